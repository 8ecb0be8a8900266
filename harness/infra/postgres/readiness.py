"""Wait until a PostgreSQL server accepts connections again, and say how long that took.

The chaos suite's process faults count recovery from "the server accepts connections again as
seen by the harness" — not from `pg_ctl -w` (which polls every 100 ms and looks at the pid file,
not at the socket). The probe is a plain asyncpg connect + `SELECT 1` straight to the server
every ~10 ms; what it met meanwhile (refused, 57P03 "starting up / in recovery", ...) is
counted, so a report can show that crash recovery was observed.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import asyncpg

from harness.dsn import redact
from harness.errors import ProvisioningError


@dataclass(frozen=True)
class Readiness:
    """When a server became ready, as seen by our own probe (monotonic seconds)."""

    since: float  # when waiting started (e.g. the moment the start command was issued)
    ready_at: float  # the first probe that connected and ran SELECT 1
    attempts: int
    errors: dict[str, int] = field(default_factory=dict)  # "refused", "57P03", ... -> count

    @property
    def seconds(self) -> float:
        return self.ready_at - self.since

    @property
    def saw_recovery(self) -> bool:
        """A probe was told 57P03 (starting up / in recovery / not yet accepting)."""
        return self.errors.get("57P03", 0) > 0


def probe_error_kind(exc: BaseException) -> str:
    """A short, value-free name for why a probe failed (a key of `Readiness.errors`)."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate:
        return sqlstate
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, (ConnectionResetError, asyncpg.ConnectionDoesNotExistError)):
        return "reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


async def probe_once(dsn: str, *, limit_s: float = 1.0) -> None:
    """One connect + SELECT 1, each bounded by `limit_s` (raises what asyncpg raised)."""
    conn = await asyncpg.connect(dsn, timeout=limit_s, command_timeout=limit_s)
    try:
        await conn.fetchval("SELECT 1")
    finally:
        conn.terminate()  # no goodbye round trip: the probe must not slow the loop


async def wait_accepting(dsn: str, *, within: float = 60.0, interval: float = 0.01,
                         since: float | None = None, attempt_s: float = 1.0) -> Readiness:
    """Probe `dsn` every `interval` s until one probe succeeds; `since` (monotonic) is where the
    measured time starts (default: now). Raises ProvisioningError after `within` seconds."""
    start = time.monotonic() if since is None else since
    give_up = time.monotonic() + within
    errors: Counter[str] = Counter()
    attempts = 0
    last: BaseException | None = None
    while True:
        attempts += 1
        try:
            await probe_once(dsn, limit_s=attempt_s)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            errors[probe_error_kind(exc)] += 1
            last = exc
        else:
            return Readiness(start, time.monotonic(), attempts, dict(errors))
        if time.monotonic() >= give_up:
            raise ProvisioningError(
                f"PostgreSQL at {redact(dsn)} did not accept connections within {within:g} s "
                f"({attempts} probes; last: {type(last).__name__}: {last})",
                hint="see the server log; crash recovery of a large WAL can take longer",
            )
        await asyncio.sleep(interval)
