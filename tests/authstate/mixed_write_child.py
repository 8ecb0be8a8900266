"""Run by test_store_mixed_writes.py in a child process: mixed `keys.set` calls (upserts and
deletes of overlapping keys of one company, as Baileys' pkmsg write), then one JSON line saying
how many succeeded and which errors happened (by SQLSTATE or class).

    python mixed_write_child.py DSN COMPANY PROCESS WRITES GROUPS SEED

Group g has 4 `session` keys and 4 `pre-key`s; a call moves group g to "sessions" (its sessions
upserted, its pre-keys deleted) and group h to "pre-keys" (the reverse), all tagged with the
call's (process, seq). Two calls on crossed groups lock each other's rows in opposite roles:
the deadlock the store must not have. Each call also upserts `device-list` "p<process>" with its
seq (the last one must survive: no lost update).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import Counter

from harness.authstate import PostgresAuthStore, StoreError

FAMILY = 4


def call(process: int, seq: int, g: int, h: int) -> dict[str, dict[str, object]]:
    tag = {"p": process, "n": seq}
    return {
        "session": {**{f"g{g}.{i}": tag for i in range(FAMILY)},
                    **{f"g{h}.{i}": None for i in range(FAMILY)}},
        "pre-key": {**{f"g{h}.{i}": tag for i in range(FAMILY)},
                    **{f"g{g}.{i}": None for i in range(FAMILY)}},
        "device-list": {f"p{process}": [str(seq)]},
    }


async def main(dsn: str, company: str, process: int, writes: int, groups: int,
               seed: int) -> None:
    rng = random.Random(seed)
    errors: Counter[str] = Counter()
    ok = 0
    last_ok = -1
    store = await PostgresAuthStore.open(dsn, operation_deadline=30.0, connect_timeout=5.0,
                                         migrate_schema=False, max_size=2)
    try:
        for seq in range(writes):
            g, h = rng.sample(range(groups), 2)
            try:
                await store.set_keys(company, call(process, seq, g, h))
            except StoreError as exc:
                errors[exc.sqlstate or type(exc).__name__] += 1
            else:
                ok += 1
                last_ok = seq
    finally:
        await store.close()
    print(json.dumps({"ok": ok, "errors": dict(errors), "last_ok": last_ok}), flush=True)


if __name__ == "__main__":
    dsn_, company_, process_, writes_, groups_, seed_ = sys.argv[1:7]
    asyncio.run(main(dsn_, company_, int(process_), int(writes_), int(groups_), int(seed_)))
