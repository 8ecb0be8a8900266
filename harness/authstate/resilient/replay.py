"""Replaying journal records into PostgreSQL: idempotent, in order, newest row wins.

A batch (the oldest pending records) is reduced to the last operation per (company, type, id)
and per company's creds, then applied in ONE transaction with one multi-row statement per kind:

- upserts set `updated_at` to the record's acknowledgement time and only replace a row whose
  `updated_at` is not newer (`WHERE whatsapp_keys.updated_at <= EXCLUDED.updated_at`);
- deletes remove a row only if it is not newer than the delete's acknowledgement time;
- creds likewise on `whatsapp_auth`.

Replaying a record twice (a crash after the commit, before the "applied" marker) writes the same
rows with the same times: idempotent. A row that another store instance wrote *after* our write
was acknowledged is left alone and reported as a conflict (key refs only, never values).

Last writer wins by acknowledgement time. Direct writes stamp `updated_at` with the server's
`now()`; journaled writes stamp the server time this process estimated when it acknowledged
them (`clock.ServerClock`: local clock + offset measured against the server), so the two are on
one clock up to the measurement error (a round trip). Limits: a row deleted by another instance
leaves no tombstone, so replaying our older upsert of it recreates it (undetectable); and two
writes acknowledged within the clock error of each other may be ordered either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from harness.authstate.key_types import ttl_seconds
from harness.authstate.resilient.records import KEYS, JournalRecord

UPSERT_KEYS = """
INSERT INTO whatsapp_keys AS k (company_id, key_type, key_id, value, updated_at, expires_at)
SELECT t.c, t.kt, t.kid, t.v::jsonb, to_timestamp(t.at),
       to_timestamp(t.at) + t.ttl * interval '1 second'
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::int4[])
     AS t(c, kt, kid, v, at, ttl)
ON CONFLICT (company_id, key_type, key_id) DO UPDATE
SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
WHERE k.updated_at <= EXCLUDED.updated_at
"""
# Run after UPSERT_KEYS in the same transaction only when it applied fewer rows than it got:
# the rows it skipped are exactly those still newer than the replayed write.
NEWER_KEYS = """
SELECT t.c, t.kt, t.kid
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[]) AS t(c, kt, kid, at)
JOIN whatsapp_keys k ON k.company_id = t.c AND k.key_type = t.kt AND k.key_id = t.kid
WHERE k.updated_at > to_timestamp(t.at)
"""
# Deletes, returning the refs NOT deleted because the row is newer (the outer SELECT sees the
# snapshot taken before the DELETE, in which those rows are still there).
DELETE_KEYS = """
WITH d AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[]) AS t(c, kt, kid, at)
), gone AS (
    DELETE FROM whatsapp_keys k USING d
    WHERE k.company_id = d.c AND k.key_type = d.kt AND k.key_id = d.kid
      AND k.updated_at <= to_timestamp(d.at)
    RETURNING 1
)
SELECT d.c, d.kt, d.kid FROM d
JOIN whatsapp_keys k ON k.company_id = d.c AND k.key_type = d.kt AND k.key_id = d.kid
WHERE k.updated_at > to_timestamp(d.at)
"""
UPSERT_CREDS = """
INSERT INTO whatsapp_auth AS a (company_id, creds, updated_at)
SELECT t.c, t.v::jsonb, to_timestamp(t.at)
FROM unnest($1::text[], $2::text[], $3::float8[]) AS t(c, v, at)
ON CONFLICT (company_id) DO UPDATE
SET creds = EXCLUDED.creds, updated_at = EXCLUDED.updated_at
WHERE a.updated_at <= EXCLUDED.updated_at
"""
NEWER_CREDS = """
SELECT t.c FROM unnest($1::text[], $2::float8[]) AS t(c, at)
JOIN whatsapp_auth a ON a.company_id = t.c
WHERE a.updated_at > to_timestamp(t.at)
"""

ConflictRef = tuple[str, str, str]  # (company, key type or "creds", key id or "")


@dataclass
class ReplayResult:
    records: int = 0
    rows: int = 0  # distinct rows the batch tried to write (after dedupe)
    conflicts: list[ConflictRef] = field(default_factory=list)


@dataclass
class BatchPlan:
    """A batch reduced to the last operation per row, as statement arrays."""

    up_c: list[str] = field(default_factory=list)
    up_t: list[str] = field(default_factory=list)
    up_i: list[str] = field(default_factory=list)
    up_v: list[str] = field(default_factory=list)
    up_at: list[float] = field(default_factory=list)
    up_ttl: list[int] = field(default_factory=list)
    del_c: list[str] = field(default_factory=list)
    del_t: list[str] = field(default_factory=list)
    del_i: list[str] = field(default_factory=list)
    del_at: list[float] = field(default_factory=list)
    creds_c: list[str] = field(default_factory=list)
    creds_v: list[str] = field(default_factory=list)
    creds_at: list[float] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.up_c) + len(self.del_c) + len(self.creds_c)


def plan(records: Sequence[JournalRecord]) -> BatchPlan:
    """Last operation per (company, type, id) and per company's creds, in record order."""
    last: dict[tuple[str, str, str], tuple[str | None, float]] = {}
    creds: dict[str, tuple[str, float]] = {}
    for record in records:
        if record.kind == KEYS:
            company, at = record.company, record.at
            for key_type, key_id, text in record.rows:
                last[(company, key_type, key_id)] = (text, at)
        else:
            creds[record.company] = (record.creds, record.at)  # type: ignore[assignment]
    p = BatchPlan()
    ttl_of: dict[str, int] = {}
    for (company, key_type, key_id), (text, at) in last.items():
        if text is None:
            p.del_c.append(company)
            p.del_t.append(key_type)
            p.del_i.append(key_id)
            p.del_at.append(at)
            continue
        ttl = ttl_of.get(key_type)
        if ttl is None:
            ttl = ttl_of[key_type] = ttl_seconds(key_type)
        p.up_c.append(company)
        p.up_t.append(key_type)
        p.up_i.append(key_id)
        p.up_v.append(text)
        p.up_at.append(at)
        p.up_ttl.append(ttl)
    for company, (text, at) in creds.items():
        p.creds_c.append(company)
        p.creds_v.append(text)
        p.creds_at.append(at)
    return p


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def apply_batch(conn: asyncpg.Connection, records: Sequence[JournalRecord]) -> ReplayResult:
    """Apply `records` in one transaction; the rows PostgreSQL held newer are conflicts."""
    p = plan(records)
    result = ReplayResult(records=len(records), rows=p.rows)
    async with conn.transaction():
        if p.up_c:
            applied = _count(await conn.execute(UPSERT_KEYS, p.up_c, p.up_t, p.up_i, p.up_v,
                                                p.up_at, p.up_ttl))
            if applied < len(p.up_c):
                rows = await conn.fetch(NEWER_KEYS, p.up_c, p.up_t, p.up_i, p.up_at)
                result.conflicts.extend((r[0], r[1], r[2]) for r in rows)
        if p.del_c:
            rows = await conn.fetch(DELETE_KEYS, p.del_c, p.del_t, p.del_i, p.del_at)
            result.conflicts.extend((r[0], r[1], r[2]) for r in rows)
        if p.creds_c:
            applied = _count(await conn.execute(UPSERT_CREDS, p.creds_c, p.creds_v,
                                                p.creds_at))
            if applied < len(p.creds_c):
                rows = await conn.fetch(NEWER_CREDS, p.creds_c, p.creds_at)
                result.conflicts.extend((r[0], "creds", "") for r in rows)
    return result
