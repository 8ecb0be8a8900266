"""Each nemesis against a real proxy and a real PostgreSQL: the effect the client sees (as
reference/failure-modes.md predicts), the window it records, and a complete clear."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest

from fixtures.faults import PgProxy
from harness.chaos import pg_faults
from harness.chaos.catalog import SCENARIOS, ScenarioParams, scenario_params
from harness.chaos.nemesis import NEMESES, make_nemesis
from harness.chaos.nemesis_api import BulkWrite, ChaosEnv, NemesisUnavailable
from harness.chaos.owned_server import owned_postgres, process_control_unavailable
from harness.chaos.scenario import load_shape
from harness.dsn import database_of, with_database, with_host_port
from harness.faults.client import ToxiproxyClient
from harness.faults.helpers import Faults
from harness.infra.postgres import IsolatedDatabases
from harness.infra.postgres.roles import LoginRole, login_role
from harness.metrics.fault_timeline import FaultTimeline

pytestmark = pytest.mark.timeout(120)

# What a connection whose session was ended raises at its next use: asyncpg 0.32 may not have
# read the FATAL yet (ConnectionDoesNotExistError) or trips on it mid-state (InternalClientError
# "another operation is in progress", as harness/authstate/store.py notes).
BROKEN = (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.InternalClientError,
          OSError)
DEADLINE = 1.0


def sqlstates(exc: BaseException | None) -> list[str]:
    """SQLSTATEs along the cause chain (asyncpg reports a FATAL that closes the connection as
    ConnectionDoesNotExistError, caused by the server's error)."""
    found = []
    while exc is not None:
        if getattr(exc, "sqlstate", None):
            found.append(exc.sqlstate)  # type: ignore[attr-defined]
        exc = exc.__cause__ or exc.__context__
    return found


async def connect(dsn: str, limit_s: float = 5.0) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, timeout=limit_s)


async def works(dsn: str) -> bool:
    conn = await connect(dsn)
    try:
        return await conn.fetchval("SELECT 1", timeout=5) == 1
    finally:
        await conn.close()


def env_for(proxy: PgProxy, *, admin_dsn: str, app_role: str | None = None,
            proxy_dsn: str | None = None, direct_dsn: str | None = None,
            server: Any = None, workload: Any = None) -> ChaosEnv:
    return ChaosEnv(faults=proxy.faults, timeline=proxy.timeline,
                    proxy_dsn=proxy_dsn or proxy.dsn, direct_dsn=direct_dsn or proxy.direct_dsn,
                    admin_dsn=admin_dsn, app_role=app_role, server=server,
                    deadline_s=DEADLINE, database=database_of(proxy.direct_dsn),
                    workload=workload)


def only_window(env: ChaosEnv, kind: str):  # type: ignore[no-untyped-def]
    [window] = env.timeline.windows
    assert window.kind == kind and window.cleared_at is not None
    return window


@pytest.fixture
def env(pg_proxy: PgProxy, pg_dsn: str) -> ChaosEnv:
    return env_for(pg_proxy, admin_dsn=pg_dsn)


@pytest.fixture
async def role(pg_server: Any, pg_dsn: str) -> AsyncIterator[LoginRole]:
    async with login_role(pg_server.dsn, pg_dsn) as made:
        yield made


@pytest.fixture
def role_env(pg_proxy: PgProxy, pg_dsn: str, role: LoginRole) -> ChaosEnv:
    return env_for(pg_proxy, admin_dsn=pg_dsn, app_role=role.name,
                   proxy_dsn=with_host_port(role.dsn, pg_proxy.host, pg_proxy.port),
                   direct_dsn=role.dsn)


# -- the catalog and the contract ------------------------------------------------------------
def test_every_scenario_but_the_shapes_has_a_nemesis_matching_the_catalog() -> None:
    shapes = {n for n in SCENARIOS if load_shape(n, scenario_params(n, "smoke")) is not None}
    assert {"client-crash", "power-loss", "cancel", "deploy-overlap", "restart-degraded"} <= shapes
    assert set(NEMESES) == set(SCENARIOS) - shapes
    for name, info in SCENARIOS.items():
        if name in shapes:
            with pytest.raises(NemesisUnavailable, match="own scenario shape"):
                make_nemesis(name, scenario_params(name, "smoke"))
            continue
        nemesis = make_nemesis(name, scenario_params(name, "smoke"))
        assert nemesis.name == name
        assert nemesis.mttd_bound == info.mttd_bound
        assert nemesis.needs_process_control == info.needs_process_control
        assert nemesis.needs_role == info.needs_role
        assert nemesis.pg_recovery_s() is None


async def test_clear_without_inject_is_harmless(env: ChaosEnv) -> None:
    for name in NEMESES:
        nemesis = make_nemesis(name, scenario_params(name, "smoke"))
        assert isinstance(await nemesis.clear(env), float)
        assert isinstance(await nemesis.clear(env), float)
    assert env.timeline.windows == []


async def test_process_and_role_nemeses_say_how_to_enable_them(env: ChaosEnv) -> None:
    for name in ("pg-kill", "pg-restart"):
        with pytest.raises(NemesisUnavailable) as err:
            await make_nemesis(name).inject(env)
        assert "--dsn" in str(err.value)
    for name in ("terminate-backends", "connection-exhaustion", "read-only"):
        with pytest.raises(NemesisUnavailable, match="role"):
            await make_nemesis(name).inject(env)
    assert env.timeline.windows == []


def test_owned_server_is_refused_for_an_external_run(monkeypatch: pytest.MonkeyPatch) -> None:
    assert process_control_unavailable({}) is None
    assert process_control_unavailable({"AUTHSTATE_PG_KIND": "container"}) is None
    monkeypatch.setenv("AUTHSTATE_PG_KIND", "external")
    assert "external" in (process_control_unavailable() or "")
    with pytest.raises(NemesisUnavailable) as err, owned_postgres():
        pass
    assert "run without --dsn" in str(err.value)


# -- network faults ----------------------------------------------------------------------------
async def test_sever_refuses_then_clears(env: ChaosEnv) -> None:
    live = await connect(env.proxy_dsn)
    nemesis = make_nemesis("sever")
    await nemesis.inject(env)
    try:
        with pytest.raises(BROKEN):
            await asyncio.wait_for(live.fetchval("SELECT 1"), 5)
        with pytest.raises(ConnectionRefusedError):
            await connect(env.proxy_dsn)
    finally:
        cleared = await nemesis.clear(env)
    live.terminate()
    window = only_window(env, "sever")
    assert window.cleared_at.monotonic == cleared
    assert await works(env.proxy_dsn)


async def test_long_outage_is_a_sever_with_its_own_window(env: ChaosEnv) -> None:
    nemesis = make_nemesis("long-outage", scenario_params("long-outage", "thorough"))
    await nemesis.inject(env)
    try:
        with pytest.raises(ConnectionRefusedError):
            await connect(env.proxy_dsn)
    finally:
        await nemesis.clear(env)
    only_window(env, "long-outage")
    assert await works(env.proxy_dsn)


async def test_blackhole_hangs_until_the_deadline(env: ChaosEnv) -> None:
    live = await connect(env.proxy_dsn)
    nemesis = make_nemesis("blackhole")
    await nemesis.inject(env)
    try:
        with pytest.raises(TimeoutError):
            await live.fetchval("SELECT 1", timeout=DEADLINE)
        with pytest.raises(TimeoutError):
            await connect(env.proxy_dsn, DEADLINE)
    finally:
        await nemesis.clear(env)
    live.terminate()
    only_window(env, "blackhole")
    assert await works(env.proxy_dsn)


async def test_latency_spike_outlasts_the_deadline_then_goes(env: ChaosEnv) -> None:
    live = await connect(env.proxy_dsn)
    nemesis = make_nemesis("latency-spike")
    await nemesis.inject(env)
    try:
        with pytest.raises(TimeoutError):
            await live.fetchval("SELECT 1", timeout=DEADLINE)
    finally:
        await nemesis.clear(env)
    live.terminate()
    window = only_window(env, "latency-spike")
    assert window.params["latency_ms"] == int((DEADLINE + 1.0) * 1000)
    conn = await connect(env.proxy_dsn)
    try:  # nothing is delayed any more: a query answers within the deadline
        assert await conn.fetchval("SELECT 1", timeout=DEADLINE) == 1
    finally:
        await conn.close()


async def test_bandwidth_makes_a_session_sized_read_exceed_the_deadline(env: ChaosEnv) -> None:
    live = await connect(env.proxy_dsn)
    nemesis = make_nemesis("bandwidth")
    await nemesis.inject(env)
    try:
        with pytest.raises(TimeoutError):
            await live.fetchval("SELECT repeat('x', 8000)", timeout=DEADLINE)
    finally:
        await nemesis.clear(env)
    live.terminate()
    only_window(env, "bandwidth")
    conn = await connect(env.proxy_dsn)
    try:
        assert len(await conn.fetchval("SELECT repeat('x', 8000)", timeout=DEADLINE)) == 8000
    finally:
        await conn.close()


async def test_bandwidth_write_that_timed_out_still_commits_after_the_clear(
        env: ChaosEnv, pg_dsn: str) -> None:
    """Why a timed-out write's outcome is "unknown": the bytes already handed to the network
    are delivered once it recovers, even though the client gave up and closed the connection.
    A store that replays newer writes before such a straggler lands can be overwritten by it."""
    direct = await connect(pg_dsn)
    await direct.execute("CREATE TABLE t(x text)")
    conn = await connect(env.proxy_dsn)
    nemesis = make_nemesis("bandwidth")
    await nemesis.inject(env)
    try:
        with pytest.raises(TimeoutError):
            await conn.execute("INSERT INTO t VALUES ($1)", "x" * 8000, timeout=DEADLINE)
        conn.terminate()
        assert await direct.fetchval("SELECT count(*) FROM t") == 0
    finally:
        await nemesis.clear(env)
    try:
        for _ in range(500):  # it lands shortly after the clear
            if await direct.fetchval("SELECT count(*) FROM t") == 1:
                break
            await asyncio.sleep(0.01)
        assert await direct.fetchval("SELECT count(*) FROM t") == 1
    finally:
        await direct.close()


async def test_limit_data_cuts_every_connection_mid_response(env: ChaosEnv) -> None:
    nemesis = make_nemesis("limit-data")
    await nemesis.inject(env)
    try:
        for _ in range(2):  # again and again: each new connection is cut too
            conn = await connect(env.proxy_dsn)  # the start-up fits under the limit
            assert await conn.fetchval("SELECT 1") == 1
            with pytest.raises(BROKEN):
                await conn.fetchval("SELECT repeat('x', 8000)", timeout=5)
            conn.terminate()
    finally:
        await nemesis.clear(env)
    only_window(env, "limit-data")
    conn = await connect(env.proxy_dsn)
    try:
        for _ in range(3):
            assert len(await conn.fetchval("SELECT repeat('x', 8000)", timeout=5)) == 8000
    finally:
        await conn.close()


@dataclasses.dataclass
class PreKeyWriter:
    """The workload's bulk_write hook, over the reference store (through the proxy)."""

    store: Any
    writes: list[tuple[str, BulkWrite]] = dataclasses.field(default_factory=list)

    def bulk_write(self, count: int = 812, company: str | None = None) -> BulkWrite:
        company = company or f"bulk{len(self.writes)}"
        request = BulkWrite(company=company, count=count)
        self.writes.append((company, request))

        async def run() -> None:
            try:
                state = await self.store.load(company)
                data = {"pre-key": {str(i): {"public": bytes(32), "private": bytes(32)}
                                    for i in range(1, count + 1)}}
                request.invoked.set()
                await state.keys.set(data)
                request.outcome = "ok"
            except Exception:
                request.outcome = "info"
            finally:
                request.invoked.set()
                request.done.set()

        asyncio.get_running_loop().create_task(run())
        return request


async def test_reset_mid_write_hits_an_812_pre_key_write_in_flight_atomically(
        pg_proxy: PgProxy, pg_dsn: str) -> None:
    from harness.authstate import PostgresAuthStore

    store = await PostgresAuthStore.open(pg_proxy.dsn)
    writer = PreKeyWriter(store)
    env = env_for(pg_proxy, admin_dsn=pg_dsn, workload=writer)
    nemesis = make_nemesis("reset-mid-write")
    try:
        await nemesis.inject(env)
        await asyncio.wait_for(asyncio.gather(*(w.done.wait() for _, w in writer.writes)), 30)
        await nemesis.clear(env)
    finally:
        await nemesis.clear(env)
        await store.close()
    window = only_window(env, "reset-mid-write")
    assert window.params["write_in_flight"] is True
    assert writer.writes[-1][1].outcome == "info"  # the RST broke the write being sent
    conn = await connect(pg_dsn)
    try:
        for company, _ in writer.writes:  # all of it or none of it
            rows = await conn.fetchval("SELECT count(*) FROM whatsapp_keys WHERE company_id = $1",
                                       company)
            assert rows in (0, 812)
    finally:
        await conn.close()
    assert await works(env.proxy_dsn)


async def test_flap_records_one_window_per_down_phase(env: ChaosEnv) -> None:
    params = ScenarioParams("smoke", 1, 1, warmup_s=0, outage_s=0.3, recovery_s=0,
                            settle_s=0, cycles=5, up_s=0.3)
    nemesis = make_nemesis("flap", params)
    await nemesis.inject(env)
    try:
        with pytest.raises(ConnectionRefusedError):  # the first down phase is open
            await connect(env.proxy_dsn)
        await asyncio.sleep(params.fault_span_s)
    finally:
        cleared = await nemesis.clear(env)
    windows = env.timeline.windows
    assert [w.params["cycle"] for w in windows] == [1, 2, 3, 4, 5]
    assert all(w.kind == "flap" and w.cleared_at is not None for w in windows)
    assert cleared == windows[-1].cleared_at.monotonic
    for before, after in itertools.pairwise(windows):
        assert after.injected_at.monotonic > before.cleared_at.monotonic  # up phase between
    assert await works(env.proxy_dsn)


async def test_flap_cleared_early_stops_with_the_proxy_up(env: ChaosEnv) -> None:
    params = ScenarioParams("smoke", 1, 1, warmup_s=0, outage_s=1.0, recovery_s=0,
                            settle_s=0, cycles=5, up_s=1.0)
    nemesis = make_nemesis("flap", params)
    await nemesis.inject(env)
    await nemesis.clear(env)
    assert len(env.timeline.windows) == 1
    assert all(w.cleared_at is not None for w in env.timeline.windows)
    assert await works(env.proxy_dsn)


# -- process faults (a server of the test's own) ----------------------------------------------
@dataclasses.dataclass
class OwnedSetup:
    server: Any
    env: ChaosEnv


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


@contextlib.contextmanager
def _proxy_to(toxiproxy: ToxiproxyClient, dsn: str, timeline: FaultTimeline
              ) -> Iterator[tuple[str, Faults]]:
    from harness.dsn import host_port

    name = f"nemesis-test-{time.monotonic_ns()}"
    host, port = host_port(dsn)
    proxy = toxiproxy.create_proxy(name, f"{host}:{port}", listen="127.0.0.1:0")
    try:
        yield (with_host_port(dsn, proxy.listen_host, proxy.listen_port),
               Faults(toxiproxy, name, timeline))
    finally:
        toxiproxy.delete_proxy(name)


@pytest.fixture
async def owned(toxiproxy: ToxiproxyClient) -> AsyncIterator[OwnedSetup]:
    with owned_postgres() as server:
        databases = IsolatedDatabases(server.dsn)
        dsn = await databases.create()
        timeline = FaultTimeline()
        with _proxy_to(toxiproxy, dsn, timeline) as (proxy_dsn, faults):
            env = ChaosEnv(faults=faults, timeline=timeline, proxy_dsn=proxy_dsn,
                           direct_dsn=dsn, admin_dsn=dsn, app_role=None, server=server,
                           deadline_s=DEADLINE, database=database_of(dsn))
            yield OwnedSetup(server, env)
    assert not server.base_dir.exists() and server.processes() == []
    assert _port_free(server.host, server.port)


async def _seed_rows(dsn: str, rows: int) -> None:
    conn = await connect(dsn)
    try:
        await conn.execute("CREATE TABLE t(x int)")
        await conn.execute("INSERT INTO t SELECT generate_series(1, $1::int)", rows)
    finally:
        await conn.close()


async def test_pg_kill_crashes_restarts_and_measures_recovery(owned: OwnedSetup) -> None:
    env, server = owned.env, owned.server
    await _seed_rows(env.direct_dsn, 500)
    live = await connect(env.proxy_dsn)
    nemesis = make_nemesis("pg-kill")
    await nemesis.inject(env)
    try:
        assert not server.is_running() and server.processes() == []
        with pytest.raises(BROKEN):
            await asyncio.wait_for(live.fetchval("SELECT 1"), 5)
        with pytest.raises(ConnectionRefusedError):
            await connect(env.direct_dsn)
    finally:
        cleared = await nemesis.clear(env)
    live.terminate()
    window = only_window(env, "pg-kill")
    assert window.cleared_at.monotonic == cleared
    assert window.params["signal"] == "SIGKILL" and window.params["probe_attempts"] >= 1
    recovery = nemesis.pg_recovery_s()
    assert recovery is not None and recovery > 0
    assert window.params["pg_recovery_s"] == round(recovery, 4)
    conn = await connect(env.proxy_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM t") == 500
    finally:
        await conn.close()


async def test_pg_restart_gives_57p01_and_comes_back(owned: OwnedSetup) -> None:
    env = owned.env
    await _seed_rows(env.direct_dsn, 5)
    live = await connect(env.proxy_dsn)
    sleeping = asyncio.ensure_future(live.fetchval("SELECT pg_sleep(30)"))
    await asyncio.sleep(0.2)
    nemesis = make_nemesis("pg-restart")
    await nemesis.inject(env)
    try:
        with pytest.raises(asyncpg.PostgresError) as err:
            await asyncio.wait_for(sleeping, 10)
        assert "57P01" in sqlstates(err.value)
        with pytest.raises(BROKEN):
            await connect(env.proxy_dsn, 2)
    finally:
        await nemesis.clear(env)
    live.terminate()
    window = only_window(env, "pg-restart")
    assert window.params["mode"] == "fast" and window.params["redo_s"] is None
    assert nemesis.pg_recovery_s() is not None
    conn = await connect(env.proxy_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM t") == 5
    finally:
        await conn.close()


# -- SQL faults on the target's role -----------------------------------------------------------
async def test_terminate_backends_kills_in_flight_and_new_sessions(
        role_env: ChaosEnv, pg_dsn: str) -> None:
    env = role_env
    live = await connect(env.proxy_dsn)
    sleeping = asyncio.ensure_future(live.fetchval("SELECT pg_sleep(30)"))
    await asyncio.sleep(0.2)
    admin = await connect(pg_dsn)
    nemesis = make_nemesis("terminate-backends")
    await nemesis.inject(env)
    try:
        with pytest.raises(asyncpg.PostgresError) as err:
            await asyncio.wait_for(sleeping, 10)
        assert "57P01" in sqlstates(err.value)
        again = await connect(env.proxy_dsn)  # a reconnect works, and is ended in turn
        with pytest.raises(asyncpg.PostgresError) as err:
            await again.fetchval("SELECT pg_sleep(5)", timeout=10)
        assert "57P01" in sqlstates(err.value)
        again.terminate()
        assert await admin.fetchval("SELECT 1") == 1  # other roles are left alone
    finally:
        await nemesis.clear(env)
        live.terminate()
        await admin.close()
    window = only_window(env, "terminate-backends")
    assert window.params["terminated"] >= 2 and window.params["rounds"] >= 1
    conn = await connect(env.proxy_dsn)
    try:  # nothing ends a session any more
        assert await conn.fetchval("SELECT 1 FROM pg_sleep(0.5)", timeout=5) == 1
    finally:
        await conn.close()


async def test_connection_exhaustion_gives_53300_until_cleared(
        role_env: ChaosEnv, pg_dsn: str, role: LoginRole) -> None:
    env = role_env
    live = await connect(env.proxy_dsn)
    nemesis = make_nemesis("connection-exhaustion")
    await nemesis.inject(env)
    try:
        with pytest.raises(BROKEN):
            await asyncio.wait_for(live.fetchval("SELECT 1"), 5)
        with pytest.raises(asyncpg.TooManyConnectionsError) as err:
            await connect(env.proxy_dsn)
        assert err.value.sqlstate == "53300"
    finally:
        await nemesis.clear(env)
        live.terminate()
    only_window(env, "connection-exhaustion")
    admin = await connect(pg_dsn)
    try:
        assert await pg_faults.connection_limit(admin, role.name) == -1
    finally:
        await admin.close()
    assert await works(env.proxy_dsn)


async def test_read_only_gives_25006_on_writes_until_cleared(
        role_env: ChaosEnv, pg_dsn: str, role: LoginRole) -> None:
    env = role_env
    owner = await connect(env.direct_dsn)
    await owner.execute("CREATE TABLE t(x int)")
    await owner.close()
    live = await connect(env.proxy_dsn)
    nemesis = make_nemesis("read-only")
    await nemesis.inject(env)
    during = None
    try:
        with pytest.raises(BROKEN):  # the session from before was ended
            await asyncio.wait_for(live.fetchval("SELECT 1"), 5)
        during = await connect(env.proxy_dsn)
        assert await during.fetchval("SELECT count(*) FROM t") == 0  # reads work
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError) as err:
            await during.execute("INSERT INTO t VALUES (1)")
        assert err.value.sqlstate == "25006"
    finally:
        await nemesis.clear(env)
        live.terminate()
    only_window(env, "read-only")
    assert during is not None
    with pytest.raises(BROKEN):  # a session started read-only does not survive the clear
        await asyncio.wait_for(during.execute("INSERT INTO t VALUES (1)"), 5)
    during.terminate()
    admin = await connect(pg_dsn)
    try:
        assert await pg_faults.role_settings(admin, role.name) == []
    finally:
        await admin.close()
    conn = await connect(env.proxy_dsn)
    try:
        await conn.execute("INSERT INTO t VALUES (2)")
        assert await conn.fetchval("SELECT count(*) FROM t") == 1
    finally:
        await conn.close()


async def test_app_role_owns_the_database_and_is_dropped(pg_server: Any, pg_dsn: str) -> None:
    async with login_role(pg_server.dsn, pg_dsn) as made:
        conn = await connect(made.dsn)
        try:
            assert await conn.fetchval("SELECT current_user") == made.name
            assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = "
                                       "current_user") is False
            await conn.execute("CREATE TABLE mine(x int)")
        finally:
            await conn.close()
    admin = await connect(with_database(pg_server.dsn, database_of(pg_dsn)))
    try:
        assert await admin.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1",
                                    made.name) == 0
        assert await admin.fetchval("SELECT to_regclass('public.mine') IS NOT NULL")
    finally:
        await admin.close()
