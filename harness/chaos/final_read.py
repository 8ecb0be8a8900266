"""The final read: every row of the scenario's companies, straight from PostgreSQL.

After the fault is healed and the target has settled, the checker needs the truth, not what the
target says: so this reads the tables with the superuser DSN, bypassing the proxy and the target,
decodes each stored JSON text with the store's own codec and digests it as the driver digested
the value it wrote. Creds also get a `fresh` flag (no `me` / not registered): paired creds
replaced by fresh ones is the checker's `creds-reset`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from harness.authstate import codec
from harness.chaos.values import digest, is_fresh
from harness.metrics.history import CREDS, KeyRef

FinalKey = tuple[str, KeyRef]


@dataclass
class FinalRead:
    final: dict[FinalKey, str | None] = field(default_factory=dict)
    final_meta: dict[FinalKey, dict[str, Any]] = field(default_factory=dict)
    rows: int = 0
    undecodable: int = 0  # rows whose JSON the codec refused (digested as raw text)
    seconds: float = 0.0


def _digest_text(text: str) -> tuple[str, bool]:
    try:
        return digest(codec.loads(text)), True
    except Exception:  # a value no write produced: the checker will call it unexpected
        return "raw:" + hashlib.sha256(text.encode()).hexdigest()[:12], False


async def final_read(admin_dsn: str, companies: Sequence[str], *,
                     timeout_s: float = 60.0) -> FinalRead:
    """Read creds and keys of `companies` from the database `admin_dsn` points at."""
    started = time.monotonic()
    out = FinalRead()
    conn = await asyncpg.connect(admin_dsn, timeout=min(timeout_s, 15.0),
                                 command_timeout=timeout_s)
    try:
        ids = list(companies)
        creds_rows = await conn.fetch(
            "SELECT company_id, creds::text FROM whatsapp_auth WHERE company_id = ANY($1)", ids)
        key_rows = await conn.fetch(
            "SELECT company_id, key_type, key_id, value::text FROM whatsapp_keys "
            "WHERE company_id = ANY($1)", ids)
    finally:
        await conn.close()
    for company in ids:
        out.final[(company, CREDS)] = None
    for company, text in creds_rows:
        try:
            creds = codec.loads(text)
            out.final[(company, CREDS)] = digest(creds)
            out.final_meta[(company, CREDS)] = {"fresh": is_fresh(creds)}
        except Exception:
            out.final[(company, CREDS)], _ = _digest_text(text)
            out.undecodable += 1
    for company, key_type, key_id, text in key_rows:
        value, ok = _digest_text(text)
        out.undecodable += not ok
        out.final[(company, (key_type, key_id))] = value
    out.rows = len(creds_rows) + len(key_rows)
    out.seconds = time.monotonic() - started
    return out
