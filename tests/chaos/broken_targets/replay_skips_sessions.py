"""BROKEN ON PURPOSE: the resilient store, but after a restart it replays the journal a dead
process left without its `session` rows ("Baileys re-establishes sessions anyway").

Every write is journaled and acknowledged as the resilient store does it; the mistake is at the
next open of the same cache_dir: the journal found there is compacted without its session rows
before the store reads it. A session whose ratchet turned while PostgreSQL was away rolls back
to what PostgreSQL held. The checker names the lost writes (`lost`, and `stale-read` for what
the successor read back); the Signal conversations the killed process held fail with Bad MAC
once its successor receives what the server kept for them, attributed to those session keys.
Baileys does not re-establish a session on its own: a message on the new ratchet is simply
undecryptable (then a retry receipt, a new session: what the signal gates count).

    python -m harness run --suite chaos --scenario client-crash \\
        --target tests/chaos/broken_targets/replay_skips_sessions.py:open_store    # exits 1
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.authstate.resilient.journal import HEADER, _write_new_file, frame, scan
from harness.observe.readonly import READ_ONLY_OPTION
from harness.targets import resolve_target

_READ_ONLY = READ_ONLY_OPTION.split()[-1].split("=")[0]  # default_transaction_read_only
JOURNAL = "journal.wal"


def compact_without_sessions(path: Path) -> int:
    """Rewrite the journal at `path` with its pending records only, minus their session rows
    (THE BUG); returns how many rows were dropped."""
    if not path.exists():
        return 0
    found = scan(path, path.read_bytes())
    dropped, kept = 0, []
    for record in found.records:
        if record.seq <= found.applied_through:
            continue
        if record.kind == "keys":
            rows = [row for row in record.rows if row[0] != "session"]
            dropped += len(record.rows) - len(rows)
            if not rows:
                continue
            record.rows = rows
        kept.append(frame(record.payload()))
    if dropped:
        _write_new_file(path, [HEADER, *kept])
    return dropped


async def open_store(dsn: str, *, cache_dir: Path) -> Any:
    if _READ_ONLY in dsn:  # the durable reader's instance: it only reads the tables
        return await resolve_target("reference").open(dsn, cache_dir=cache_dir)
    compact_without_sessions(Path(cache_dir) / JOURNAL)  # a dead process's journal, if any
    return await resolve_target("resilient").open(dsn, cache_dir=cache_dir)
