"""The embedded PostgreSQL executor: starts, isolates, restarts, and leaves nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import asyncpg
import pytest

from harness.infra.postgres.embedded import EmbeddedPostgres


def _postgres_pids_for(base_dir: Path) -> list[int]:
    out = subprocess.run(["ps", "-eww", "-o", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()[1:]
            if "postgres" in line and str(base_dir) in line]


def _wait_gone(path: Path, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not path.exists() and not _postgres_pids_for(path):
            return True
        time.sleep(0.1)
    return False


async def test_each_test_gets_its_own_database(pg_dsn: str, pg_server) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        name = await conn.fetchval("select current_database()")
        assert name != "postgres"
        await conn.execute("create table mine(x int)")
    finally:
        await conn.close()
    admin = await asyncpg.connect(pg_server.dsn)
    try:
        assert await admin.fetchval("select to_regclass('public.mine')") is None
    finally:
        await admin.close()


async def test_listens_on_loopback_tcp(pg_server) -> None:
    if pg_server.kind != "embedded":
        pytest.skip("checks the embedded server; run without --pg-dsn/AUTHSTATE_DSN")
    conn = await asyncpg.connect(pg_server.dsn)
    try:
        assert await conn.fetchval("select inet_server_addr()::text") == "127.0.0.1/32"
        assert await conn.fetchval("select current_setting('port')::int") == pg_server.port
        assert await conn.fetchval("select current_user") == "postgres"
    finally:
        await conn.close()


def test_close_stops_server_and_removes_files() -> None:
    pg = EmbeddedPostgres().start()
    base = pg.base_dir
    assert pg.is_running() and _postgres_pids_for(base)
    pg.close()
    assert _wait_gone(base)
    pg.close()  # idempotent


async def test_crash_and_restart_keep_committed_data() -> None:
    with EmbeddedPostgres() as pg:
        conn = await asyncpg.connect(pg.dsn)
        await conn.execute("create table t(x int); insert into t values (42)")
        await conn.close()
        pg.stop("immediate")
        assert not pg.is_running()
        pg.start()
        conn = await asyncpg.connect(pg.dsn)
        assert await conn.fetchval("select x from t") == 42
        await conn.close()


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_no_orphans_when_owner_dies(tmp_path: Path, how: str) -> None:
    """Kill the owning process (no cleanup code runs for SIGKILL): the reaper still cleans up."""
    script = textwrap.dedent("""
        import sys, time
        from harness.infra.postgres.embedded import EmbeddedPostgres
        pg = EmbeddedPostgres().start()
        print(pg.base_dir, flush=True)
        try:
            time.sleep(120)
        finally:
            pg.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout is not None
        base = Path(proc.stdout.readline().strip())
        assert base.exists() and _postgres_pids_for(base)
        os.kill(proc.pid, getattr(signal, how))
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)
    assert _wait_gone(base), f"postgres or {base} left behind after {how}"
