"""A PostgreSQL server the user already runs (`--dsn` / `AUTHSTATE_DSN`); we never stop it."""

from __future__ import annotations

import asyncio
import concurrent.futures

import asyncpg

from harness.dsn import host_port, redact
from harness.errors import ProvisioningError


def run_coro_blocking(coro):  # type: ignore[no-untyped-def]
    """Run a coroutine to completion from sync code, even if an event loop is running here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _server_version(dsn: str, connect_timeout: float) -> str:
    conn = await asyncpg.connect(dsn, timeout=connect_timeout)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def probe_server(dsn: str, timeout: float = 10.0) -> str:
    """Connect once and return the server version, or raise a ProvisioningError that says why."""
    try:
        return run_coro_blocking(_server_version(dsn, timeout))
    except (TimeoutError, OSError, asyncpg.PostgresError, ValueError) as exc:
        raise ProvisioningError(
            f"cannot connect to PostgreSQL at {redact(dsn)}: {type(exc).__name__}: {exc}",
            hint="check the DSN (postgresql://user:pass@host:port/db), that the server runs and "
            "accepts TCP from here; or omit --dsn to use the embedded PostgreSQL",
        ) from exc


class ExternalPostgres:
    kind = "external"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.host, self.port = host_port(dsn)
        self.version = probe_server(dsn)

    def start(self) -> ExternalPostgres:
        return self

    def close(self) -> None:
        """Nothing to stop: the server is not ours."""

    def __repr__(self) -> str:
        return f"<ExternalPostgres {self.version} {redact(self.dsn)}>"
