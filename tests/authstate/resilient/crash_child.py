"""Run by test_store_crash.py in a child process: journal writes while PostgreSQL is away, say
how many were acknowledged, then wait to be killed with SIGKILL.

    python crash_child.py DSN CACHE_DIR COMPANIES REWRITES
"""

from __future__ import annotations

import asyncio
import sys

from harness.authstate import ResilientAuthStore


async def main(dsn: str, cache_dir: str, companies: int, rewrites: int) -> None:
    store = await ResilientAuthStore.open(dsn, cache_dir=cache_dir, operation_deadline=1.0,
                                          connect_timeout=0.5)
    # Concurrent writers (group commit), then many rewrites of one key (order).
    await asyncio.gather(*(store.set_keys(f"co{i}", {"session": {"s": {"n": i}}})
                           for i in range(companies)))
    for n in range(rewrites):
        await store.set_keys("co0", {"pre-key": {"1": {"n": n}}})
    await store.write_creds_text("co0", '{"registered": true}')
    status = store.status()
    print(f"acked {companies + rewrites + 1} depth {status['journal']['depth']} "
          f"mode {status['mode']}", flush=True)
    await asyncio.sleep(3600)  # killed here


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
