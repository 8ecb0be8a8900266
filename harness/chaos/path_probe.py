"""Is the database path the target uses working? The observer's own probe of it.

A scenario proves something only if its fault reached the path between the store and
PostgreSQL. The probe opens a NEW connection the way the target does (its role, through the
fault proxy), asks whether its transactions are read-only and fetches 8 KB, all within a short
bound, then closes it. It is `down` when any of that fails or is slow:

- refused or closed (sever, process faults, connection-exhaustion's 53300), reset, cut after a
  few KB (limit-data), or terminated (57P01);
- no answer within the bound (black hole, latency beyond it, a 1 KB/s trickle);
- read-only (read-only: the role's `default_transaction_read_only` is on).

One connection per probe, every `interval_s` (0.25 s): a few ms of PostgreSQL's time each.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import asyncpg

from harness.metrics.observations import Probe

PROBE_TIMEOUT_S = 0.5
PROBE_QUERY = "SELECT current_setting('default_transaction_read_only'), repeat('x', 8192)"


async def probe_once(dsn: str, timeout_s: float = PROBE_TIMEOUT_S) -> Probe:
    """One probe of `dsn`, timed on the monotonic ns clock the histories use."""
    start = time.monotonic_ns()
    conn: asyncpg.Connection | None = None
    down, detail = False, ""
    try:
        async with asyncio.timeout(timeout_s):
            conn = await asyncpg.connect(dsn, timeout=timeout_s)
            read_only, _ = await conn.fetchrow(PROBE_QUERY)
        if read_only == "on":
            down, detail = True, "read-only"
    except TimeoutError:
        down, detail = True, "timeout"
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
            asyncpg.InternalClientError) as exc:
        # InternalClientError: the connection was terminated in the middle of the query
        # (terminate-backends) and asyncpg's protocol state is left mid-operation
        code = getattr(exc, "sqlstate", None)
        down, detail = True, f"{type(exc).__name__}{f' {code}' if code else ''}"
    finally:
        if conn is not None:
            conn.terminate()  # never wait on a goodbye through a broken path
    return Probe(start, time.monotonic_ns(), down, detail)


class PathProbe:
    """Probes `dsn` every `interval_s` in the background, recording into `sink`."""

    def __init__(self, dsn: str, sink: list[Probe] | None = None, *,
                 interval_s: float = 0.25) -> None:
        self.dsn = dsn
        self.interval_s = interval_s
        self.probes: list[Probe] = [] if sink is None else sink
        self._task: asyncio.Task[None] | None = None

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            self.probes.append(await probe_once(self.dsn))
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="chaos-path-probe")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
