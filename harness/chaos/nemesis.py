"""The nemeses: one per scenario, each breaking a real proxy or a real PostgreSQL.

`make_nemesis(name, params)` returns the nemesis of a scenario of harness/chaos/catalog.py (the
contract is harness/chaos/nemesis_api.py). Every nemesis records one FaultWindow per fault
phase in `env.timeline`, of kind = the scenario's name (flap: one "flap" window per down
phase), opened before the first call that injects it and closed once it is surely gone:

- sever, long-outage: proxy disabled (refused, open connections closed) -> re-enabled.
- blackhole: `timeout` toxic 0 both ways (accepted, nothing flows) -> toxics removed.
- latency-spike: downstream latency = deadline + 1 s -> removed.
- bandwidth: 1 KB/s both ways -> removed.
- limit-data: every connection closed after 4 KB downstream, again and again -> removed.
- reset-mid-write: upstream slowed to 200 KB/s, an 812-pre-key write started, then RST on
  every connection at its next byte -> both toxics removed.
- flap: sever/restore `cycles` times -> the last restore.
- pg-kill: SIGKILL of the postmaster (orphaned backends waited for, then killed) ->
  restarted on the same data; cleared when our probe first connects.
- pg-restart: `pg_ctl stop -m fast` (57P01) -> started; cleared when our probe connects.
- terminate-backends: pg_terminate_backend of the role's sessions every 100 ms -> loop stopped.
- connection-exhaustion: role CONNECTION LIMIT 0 + its sessions ended (53300) -> limit -1.
- read-only: role default_transaction_read_only = on + its sessions ended (25006) -> RESET, and
  every session started under the setting has exited.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import asyncpg

from harness.chaos import pg_faults
from harness.chaos.catalog import ScenarioParams, scenario
from harness.chaos.nemesis_api import ChaosEnv, Nemesis, NemesisUnavailable
from harness.faults.helpers import Fault, Faults, Flap
from harness.infra.postgres.readiness import Readiness, wait_accepting
from harness.metrics.fault_timeline import FaultTimeline, FaultWindow, Instant

# limit-data: a fresh asyncpg connection receives ~0.5 KB at start-up (authentication,
# parameter statuses); 4 KB lets it connect and answer a few small reads, then cuts it in the
# middle of a response (a session record alone is 1-8 KB).
LIMIT_DATA_BYTES = 4096
# bandwidth: 1 KB/s, so a session read (1-8 KB) or any write of a few KB outlasts a 2 s deadline.
BANDWIDTH_KBPS = 1
# reset-mid-write: 812 pre-keys are ~130 KB upstream; at 200 KB/s they are on the wire for
# ~0.6 s, well inside the deadline, so the RST (sent RESET_AFTER_S after the call began) finds
# the write still being sent.
RESET_SLOW_KBPS = 200
RESET_AFTER_S = 0.15
RESET_ATTEMPTS = 3
# latency-spike: responses late by this much more than the deadline.
LATENCY_OVER_DEADLINE_S = 1.0
TERMINATE_INTERVAL_S = 0.1
PROBE_INTERVAL_S = 0.01
READY_WITHIN_S = 120.0
ORPHAN_WAIT_S = 15.0


def _instant_at(monotonic: float) -> Instant:
    """An Instant for a monotonic time taken earlier (e.g. our probe's first success)."""
    now_m, now_w = time.monotonic(), time.time()
    return Instant(monotonic, now_w - (now_m - monotonic))


class _Nemesis(abc.ABC):
    """Shared bookkeeping: one window at a time, `clear` idempotent and safe after a failed
    inject (the runner always calls it)."""

    name: ClassVar[str]
    mttd_bound: Literal["gate", "deadline"] = "gate"
    needs_process_control = False
    needs_role = False

    def __init__(self, params: ScenarioParams | None = None) -> None:
        self.params = params
        self.window: FaultWindow | None = None
        self._last_clear: float | None = None

    def pg_recovery_s(self) -> float | None:
        return None

    def _open(self, env: ChaosEnv, target: str, params: dict[str, Any],
              at: Instant) -> FaultWindow:
        self.window = env.timeline.open(self.name, target, params, at=at)
        self._last_clear = None
        return self.window

    def _close(self, env: ChaosEnv, at: Instant | None = None) -> float:
        window, self.window = self.window, None
        if window is None:
            return self._last_clear if self._last_clear is not None else time.monotonic()
        env.timeline.close(window, at=at or Instant.now())
        assert window.cleared_at is not None
        self._last_clear = window.cleared_at.monotonic
        return self._last_clear

    def __repr__(self) -> str:
        return f"<nemesis {self.name}>"


# -- network faults (the proxy) ------------------------------------------------------------------
def _private(env: ChaosEnv) -> Faults:
    """The env's proxy helpers recording into a throwaway timeline: the nemesis records one
    window named after the scenario instead of one per toxic."""
    return Faults(env.faults.client, env.faults.proxy, FaultTimeline())


class ProxyNemesis(_Nemesis):
    """One Fault of the proxy helpers, injected and later cleared."""

    def __init__(self, params: ScenarioParams | None = None) -> None:
        super().__init__(params)
        self._fault: Fault | None = None

    @abc.abstractmethod
    def build(self, faults: Faults, env: ChaosEnv) -> Fault:
        """The proxy fault this nemesis injects (not yet injected)."""

    async def inject(self, env: ChaosEnv) -> None:
        started = Instant.now()
        fault = self.build(_private(env), env)
        await fault.ainject()
        self._fault = fault
        self._open(env, env.faults.proxy, dict(fault.params), started)

    async def clear(self, env: ChaosEnv) -> float:
        fault, self._fault = self._fault, None
        if fault is not None:
            await asyncio.shield(fault.aclear())
        return self._close(env)


class Sever(ProxyNemesis):
    name = "sever"

    def build(self, faults: Faults, env: ChaosEnv) -> Fault:
        return faults.sever()


class LongOutage(Sever):
    name = "long-outage"


class Blackhole(ProxyNemesis):
    name = "blackhole"
    mttd_bound = "deadline"

    def build(self, faults: Faults, env: ChaosEnv) -> Fault:
        return faults.blackhole()


class LatencySpike(ProxyNemesis):
    name = "latency-spike"
    mttd_bound = "deadline"

    def build(self, faults: Faults, env: ChaosEnv) -> Fault:
        return faults.latency(int((env.deadline_s + LATENCY_OVER_DEADLINE_S) * 1000),
                              stream="downstream")


class Bandwidth(ProxyNemesis):
    name = "bandwidth"
    mttd_bound = "deadline"

    def build(self, faults: Faults, env: ChaosEnv) -> Fault:
        return faults.bandwidth(BANDWIDTH_KBPS, stream="both")


class LimitData(ProxyNemesis):
    name = "limit-data"

    def build(self, faults: Faults, env: ChaosEnv) -> Fault:
        return faults.limit_data(LIMIT_DATA_BYTES, stream="downstream")


class ResetMidWrite(_Nemesis):
    """RST on every connection while an 812-pre-key write is being sent.

    The upstream is slowed first so the write spends ~0.6 s on the wire; the workload starts
    the write (`env.workload.bulk_write`), and RESET_AFTER_S after the store call began every
    connection is reset at its next byte (new ones too, until cleared). When the write had
    already returned (a fast store, a loaded machine), another is started, up to
    RESET_ATTEMPTS times; the window's params say whether the RST met a write in flight."""

    name = "reset-mid-write"
    count = 812

    def __init__(self, params: ScenarioParams | None = None) -> None:
        super().__init__(params)
        self._faults: list[Fault] = []
        self._bulk: Any = None

    async def inject(self, env: ChaosEnv) -> None:
        if env.workload is None:
            raise NemesisUnavailable(
                "reset-mid-write needs the workload's bulk_write hook",
                hint="run it through the chaos scenario runner, which provides env.workload")
        started = Instant.now()
        faults = _private(env)
        slow = faults.bandwidth(RESET_SLOW_KBPS, stream="upstream")
        await slow.ainject()
        self._faults.append(slow)
        in_flight = False
        attempts = 0
        while not in_flight and attempts < RESET_ATTEMPTS:
            attempts += 1
            self._bulk = env.workload.bulk_write(count=self.count)
            if env.observer is not None:  # any read of part of it is a torn write
                await env.observer.watch_group(f"812-pre-key write {attempts}",
                                               self._bulk.company, self._bulk.values)
            await self._bulk.invoked.wait()
            await asyncio.sleep(RESET_AFTER_S)
            in_flight = not self._bulk.done.is_set()
            if not in_flight:
                continue
            reset = faults.reset_peers(0, stream="both")
            await reset.ainject()
            self._faults.append(reset)
        self._open(env, env.faults.proxy, {
            "pre_keys": self.count, "slow_kbps": RESET_SLOW_KBPS, "reset_after_s": RESET_AFTER_S,
            "attempts": attempts, "write_in_flight": in_flight,
            "company": getattr(self._bulk, "company", None)}, started)
        if not in_flight:
            env.notes.append(f"reset-mid-write: each of {attempts} 812-pre-key writes returned "
                             f"within {RESET_AFTER_S} s; no RST met one in flight")

    async def clear(self, env: ChaosEnv) -> float:
        faults, self._faults = self._faults, []
        for fault in reversed(faults):
            await asyncio.shield(fault.aclear())
        if self.window is not None and self._bulk is not None:
            self.window.params["write_outcome"] = self._bulk.outcome  # None: still running
        return self._close(env)


class FlapNemesis(_Nemesis):
    """Sever/restore `params.cycles` times; each down phase is its own "flap" window."""

    name = "flap"

    def __init__(self, params: ScenarioParams | None = None) -> None:
        super().__init__(params)
        self._flap: Flap | None = None
        self._planned_end = 0.0

    def _shape(self) -> tuple[int, float, float]:
        p = self.params
        if p is None:
            return 5, 1.0, 1.5
        return max(p.cycles, 5), p.outage_s, p.up_s or p.outage_s

    async def inject(self, env: ChaosEnv) -> None:
        cycles, down, up = self._shape()
        flap = env.faults.flap(down + up, cycles, down_fraction=down / (down + up))
        flap.params.update(cycles=cycles, down_s=down, up_s=up)
        self._flap = flap
        self._planned_end = time.monotonic() + cycles * down + (cycles - 1) * up
        await flap.astart()
        give_up = time.monotonic() + 30.0
        while not flap.cycles:  # the first down phase is open when inject returns
            if time.monotonic() > give_up:
                await flap.astop()
                raise TimeoutError("flap: the first down phase did not start within 30 s")
            try:  # returns at once, raising, if the flap task failed to inject
                await asyncio.wait_for(flap.await_done(), 0.001)
            except TimeoutError:
                continue
            break

    async def clear(self, env: ChaosEnv) -> float:
        flap, self._flap = self._flap, None
        if flap is None:
            return self._last_clear if self._last_clear is not None else time.monotonic()
        early = time.monotonic() < self._planned_end - 1.0 - 0.01 * self._span()
        try:
            if not early:
                await asyncio.wait_for(flap.await_done(), timeout=self._shape()[1] + 30.0)
        except TimeoutError:
            pass
        finally:
            await flap.astop()  # an unfinished down phase is cleared by its own finally
        ends = [w.cleared_at.monotonic for w in flap.cycles if w.cleared_at is not None]
        self._last_clear = max(ends) if ends else time.monotonic()
        return self._last_clear

    def _span(self) -> float:
        cycles, down, up = self._shape()
        return cycles * down + (cycles - 1) * up


# -- process faults (our own PostgreSQL) ------------------------------------------------------
PROCESS_HINT = ("process faults need a PostgreSQL the harness starts itself: run without --dsn "
                "(AUTHSTATE_PG_KIND embedded or container)")


class _ProcessNemesis(_Nemesis):
    """Stops the server some way; `clear` starts it and waits for our probe's first success
    (the RTO clock starts there; PostgreSQL's own recovery time is `pg_recovery_s()`)."""

    needs_process_control = True
    required: tuple[str, ...] = ("stop", "start", "is_running")

    def __init__(self, params: ScenarioParams | None = None) -> None:
        super().__init__(params)
        self.readiness: Readiness | None = None
        self._down = False

    def _server(self, env: ChaosEnv) -> Any:
        server = env.server
        if server is None or not all(hasattr(server, m) for m in self.required):
            raise NemesisUnavailable(f"{self.name}: no control of the PostgreSQL process",
                                     hint=PROCESS_HINT)
        return server

    @abc.abstractmethod
    async def stop_server(self, server: Any) -> dict[str, Any]:
        """Stop (or kill) the server; what was done, for the fault window's params."""

    async def inject(self, env: ChaosEnv) -> None:
        server = self._server(env)
        started = Instant.now()
        self.readiness = None
        self._down = True
        try:
            details = await self.stop_server(server)
        except BaseException:
            self._down = not server.is_running()
            raise
        self._open(env, f"postgres:{server.port}", details, started)

    async def clear(self, env: ChaosEnv) -> float:
        if not self._down:
            return self._close(env)
        server = self._server(env)
        if not server.is_running():
            await asyncio.to_thread(_start_without_waiting, server)
        self.readiness = await wait_accepting(
            env.direct_dsn, within=READY_WITHIN_S, interval=PROBE_INTERVAL_S,
            since=getattr(server, "last_start_at", None))
        self._down = False
        if self.window is not None:
            self.window.params.update(self._recovery_details(server))
        return self._close(env, at=_instant_at(self.readiness.ready_at))

    def _recovery_details(self, server: Any) -> dict[str, Any]:
        r = self.readiness
        assert r is not None
        redo = getattr(server, "last_redo_seconds", lambda: None)()
        return {"pg_recovery_s": round(r.seconds, 4), "probe_attempts": r.attempts,
                "probe_errors": dict(r.errors), "saw_57P03": r.saw_recovery, "redo_s": redo}

    def pg_recovery_s(self) -> float | None:
        return None if self.readiness is None else self.readiness.seconds


def _start_without_waiting(server: Any) -> None:
    try:
        server.start(wait=False)
    except TypeError:  # a ControllableServer whose start() always waits
        server.start()


class PgKill(_ProcessNemesis):
    """SIGKILL of the postmaster: no shutdown at all, the next start runs crash recovery."""

    name = "pg-kill"
    required = ("stop", "start", "is_running", "crash")

    async def stop_server(self, server: Any) -> dict[str, Any]:
        began = time.monotonic()
        pid = await asyncio.to_thread(server.crash, signal.SIGKILL, orphan_timeout=ORPHAN_WAIT_S)
        return {"signal": "SIGKILL", "pid": pid,
                "stopped_in_s": round(time.monotonic() - began, 4)}


class PgRestart(_ProcessNemesis):
    """Fast shutdown (every session gets 57P01, transactions roll back), then a start."""

    name = "pg-restart"

    async def stop_server(self, server: Any) -> dict[str, Any]:
        began = time.monotonic()
        await asyncio.to_thread(server.stop, "fast")
        return {"mode": "fast", "stopped_in_s": round(time.monotonic() - began, 4)}


# -- SQL faults (the target's role) -----------------------------------------------------------
ROLE_HINT = ("faults on the target's role need the target to connect as its own LOGIN role "
             "(the chaos runner creates one; an external server needs CREATEROLE)")


class _RoleNemesis(_Nemesis):
    needs_role = True

    def _role(self, env: ChaosEnv) -> str:
        if not env.app_role:
            raise NemesisUnavailable(f"{self.name}: the target has no role of its own",
                                     hint=ROLE_HINT)
        return env.app_role


class TerminateBackends(_RoleNemesis):
    """pg_terminate_backend on every session of the role, every 100 ms, for the whole window."""

    name = "terminate-backends"

    def __init__(self, params: ScenarioParams | None = None) -> None:
        super().__init__(params)
        self._loop: pg_faults.BackendTerminator | None = None

    async def inject(self, env: ChaosEnv) -> None:
        role = self._role(env)
        loop = self._loop = pg_faults.BackendTerminator(env.admin_dsn, role,
                                                         TERMINATE_INTERVAL_S)
        await loop.connect()  # set-up, outside the window (see _RoleSettingNemesis.inject)
        started = Instant.now()
        await loop.start()
        self._open(env, f"role:{role}", {"interval_s": TERMINATE_INTERVAL_S}, started)

    async def clear(self, env: ChaosEnv) -> float:
        loop, self._loop = self._loop, None
        if loop is not None:
            await asyncio.shield(loop.stop())
            if self.window is not None:
                self.window.params.update(rounds=loop.rounds, terminated=loop.terminated)
        return self._close(env)


class _RoleSettingNemesis(_RoleNemesis):
    """A role setting turned on (and the role's sessions ended), later turned off."""

    @abc.abstractmethod
    async def turn_on(self, conn: asyncpg.Connection, role: str) -> dict[str, Any]:
        """Apply the setting to the role (and end its sessions); details for the window."""

    @abc.abstractmethod
    async def turn_off(self, conn: asyncpg.Connection, role: str) -> dict[str, Any]:
        """Undo it; details for the window."""

    def __init__(self, params: ScenarioParams | None = None) -> None:
        super().__init__(params)
        self._role_on: str | None = None

    async def inject(self, env: ChaosEnv) -> None:
        role = self._role(env)
        # The window opens once the admin session exists, just before the statements that
        # turn the fault on: connecting is set-up, not fault (it took ~0.4 s under load and
        # was counted as detection time).
        conn = await pg_faults.connect_admin(env.admin_dsn)
        started = Instant.now()
        try:
            self._role_on = role
            try:
                details = await self.turn_on(conn, role)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.turn_off(conn, role))
                self._role_on = None
                raise
        finally:
            await conn.close()
        self._open(env, f"role:{role}", details, started)

    async def clear(self, env: ChaosEnv) -> float:
        role, self._role_on = self._role_on, None
        if role is not None:
            conn = await pg_faults.connect_admin(env.admin_dsn)
            try:
                details = await asyncio.shield(self.turn_off(conn, role))
            finally:
                await conn.close()
            if self.window is not None:
                self.window.params.update(details)
        return self._close(env)


class ConnectionExhaustion(_RoleSettingNemesis):
    """CONNECTION LIMIT 0 on the role, its sessions ended: every reconnect gets 53300."""

    name = "connection-exhaustion"

    async def turn_on(self, conn: asyncpg.Connection, role: str) -> dict[str, Any]:
        await pg_faults.set_connection_limit(conn, role, 0)
        ended = await pg_faults.terminate_backends(conn, role)
        return {"connection_limit": 0, "terminated": ended}

    async def turn_off(self, conn: asyncpg.Connection, role: str) -> dict[str, Any]:
        await pg_faults.set_connection_limit(conn, role, -1)
        return {"cleared": "connection limit back to -1: the next connection is accepted"}


class ReadOnly(_RoleSettingNemesis):
    """default_transaction_read_only on the role, its sessions ended: writes get 25006.

    A session keeps the setting it started with, so clearing is RESET *and* ending every
    session started under it (waiting until they have exited): from the cleared instant on,
    every session of the role is a new, writable one. The store's pooled connections are gone
    at that moment, so its next operations reconnect."""

    name = "read-only"

    async def turn_on(self, conn: asyncpg.Connection, role: str) -> dict[str, Any]:
        await pg_faults.set_read_only(conn, role, True)
        ended = await pg_faults.terminate_backends(conn, role, wait_ms=5000)
        return {"default_transaction_read_only": True, "terminated": ended}

    async def turn_off(self, conn: asyncpg.Connection, role: str) -> dict[str, Any]:
        await pg_faults.set_read_only(conn, role, False)
        ended = await pg_faults.terminate_backends(conn, role, wait_ms=5000)
        return {"terminated_at_clear": ended,
                "cleared": "RESET, and every read-only session ended"}


NEMESES: dict[str, Callable[[ScenarioParams | None], Nemesis]] = {
    cls.name: cls for cls in (
        Sever, LongOutage, Blackhole, LatencySpike, Bandwidth, LimitData, ResetMidWrite,
        FlapNemesis, PgKill, PgRestart, TerminateBackends, ConnectionExhaustion, ReadOnly)
}


def make_nemesis(name: str, params: ScenarioParams | None = None) -> Nemesis:
    """The nemesis of scenario `name` (client-crash is a ScenarioShape: harness/chaos/crash.py)."""
    info = scenario(name)  # ConfigError with the list of names for a typo
    try:
        factory = NEMESES[info.name]
    except KeyError:
        raise NemesisUnavailable(
            f"{info.name} is not a nemesis: it has its own scenario shape",
            hint="run it through harness.chaos.crash (the runner does)") from None
    return factory(params)
