"""Crash: a process journals writes while PostgreSQL is away and is killed with SIGKILL; a new
store on the same cache_dir replays them into PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import asyncpg
import orjson
from resilient_testkit import fetch_creds, fetch_keys

CHILD = Path(__file__).with_name("crash_child.py")
COMPANIES, REWRITES = 50, 20


async def test_writes_acked_before_kill_9_are_replayed_by_the_next_open(
        pg_proxy, open_store, tmp_path: Path) -> None:
    cache_dir = tmp_path / "crashed"
    async with pg_proxy.faults.sever():
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        child = await asyncio.create_subprocess_exec(
            sys.executable, str(CHILD), pg_proxy.dsn, str(cache_dir), str(COMPANIES),
            str(REWRITES), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env)
        try:
            async with asyncio.timeout(120):
                line = (await child.stdout.readline()).decode()  # type: ignore[union-attr]
            assert line.startswith("acked"), (line, (await child.stderr.read()).decode())  # type: ignore[union-attr]
            acked = int(line.split()[1])
            assert acked == COMPANIES + REWRITES + 1
            assert "mode degraded" in line
            child.send_signal(signal.SIGKILL)
        finally:
            if child.returncode is None:
                child.kill()
            await child.wait()
        assert child.returncode == -signal.SIGKILL
        conn = await asyncpg.connect(pg_proxy.direct_dsn)
        try:  # nothing reached PostgreSQL: the child never even created the schema
            assert await conn.fetchval("SELECT to_regclass('whatsapp_keys')") is None
        finally:
            await conn.close()

    store = await open_store(pg_proxy.direct_dsn, cache_dir=cache_dir)
    assert store.status()["journal"]["recovered_at_open"] == COMPANIES + REWRITES + 1
    assert await store.flush(timeout=60)
    for i in range(COMPANIES):
        rows = await fetch_keys(pg_proxy.direct_dsn, f"co{i}")
        assert orjson.loads(rows[("session", "s")]) == {"n": i}
    assert orjson.loads((await fetch_keys(pg_proxy.direct_dsn, "co0"))[("pre-key", "1")]) \
        == {"n": REWRITES - 1}  # the last of the rewrites
    assert await fetch_creds(pg_proxy.direct_dsn, "co0") == '{"registered": true}'
    assert store.status()["mode"] == "normal"
