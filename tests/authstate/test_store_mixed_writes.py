"""Mixed `keys.set` calls (upserts and deletes of overlapping keys, Baileys' pkmsg write) from
several OS processes on one company: no deadlock, no lost update, every call atomic.

Before writes were one statement under the company's lock, a call took BEGIN + upsert + delete +
COMMIT, upserts locking before deletes: crossed calls deadlocked (3 processes x 300 writes: 115
DeadlockDetectedError; 2 x 300 here: dozens).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import defaultdict
from pathlib import Path

import asyncpg

from harness.authstate import PostgresAuthStore

CHILD = Path(__file__).with_name("mixed_write_child.py")
FAMILY = 4  # as in the child
GROUPS = 3
PROCESSES = 2
WRITES = 300
COMPANY = "acme"


def _violations(rows: list[asyncpg.Record]) -> list[str]:
    """Groups not in exactly one state: all 4 sessions (one tag) and no pre-key, or the reverse.
    A call applied in parts (upserts seen without their deletes) breaks this."""
    families: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for key_type, key_id, value in rows:
        if key_type in ("session", "pre-key"):
            families[key_id.split(".")[0]][key_type].add(value)
    bad = []
    for group in (f"g{g}" for g in range(GROUPS)):
        present = families[group]
        counts = {t: len(present.get(t, ())) for t in ("session", "pre-key")}
        if sorted(counts.values()) != [0, 1]:
            bad.append(f"{group}: {dict(present)}")
    return bad


async def _snapshot(db: asyncpg.Connection) -> list[asyncpg.Record]:
    return await db.fetch("SELECT key_type, key_id, value::text FROM whatsapp_keys "
                          "WHERE company_id = $1", COMPANY)


async def test_mixed_writes_from_two_processes_never_deadlock_lose_or_tear(pg_dsn, db) -> None:
    async with await PostgresAuthStore.open(pg_dsn) as store:
        start = {"p": -1, "n": 0}
        await store.set_keys(COMPANY, {"session": {f"g{g}.{i}": start for g in range(GROUPS)
                                                   for i in range(FAMILY)}})
    # rows per 4-row family count once per distinct tag: a torn family shows 2+ tags
    children = [await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), pg_dsn, COMPANY, str(p), str(WRITES), str(GROUPS), str(p),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for p in range(PROCESSES)]
    torn: list[str] = []
    snapshots = 0
    try:
        waits = [asyncio.ensure_future(c.communicate()) for c in children]
        while not all(w.done() for w in waits):
            torn += _violations(await _snapshot(db))
            snapshots += 1
            await asyncio.wait(waits, timeout=0.01)
        outputs = [await w for w in waits]
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    results = []
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err.decode()[-2000:]
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert [r["errors"] for r in results] == [{}] * PROCESSES  # e.g. {"40P01": 23}: deadlocks
    assert [r["ok"] for r in results] == [WRITES] * PROCESSES
    assert snapshots > 10, "the children finished before the reader saw them working"
    assert torn == [], f"a call was seen applied in part: {torn[:3]}"
    final = await _snapshot(db)
    assert _violations(final) == []
    last = {key_id: json.loads(value) for key_type, key_id, value in final
            if key_type == "device-list"}
    assert last == {f"p{p}": [str(WRITES - 1)] for p in range(PROCESSES)}  # no lost update
