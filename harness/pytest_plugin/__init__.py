"""pytest plugin (entry point `pytest11`): the harness's PostgreSQL, fault proxy, target and
chaos scenarios as fixtures in a team's own test suite.

    pytest --authstate-target node:src/auth-state.js
    # or, once for every run:  [tool.authstate-harness]  target = "node:src/auth-state.js"

    def test_store_survives_a_severed_database(authstate_chaos):
        run = authstate_chaos.run("sever")
        assert run.lost_writes == 0, run

Fixtures (all `authstate_*`): `authstate_postgres` (session: embedded PostgreSQL, or
`--authstate-dsn` / AUTHSTATE_DSN), `authstate_dsn` (a fresh database per test),
`authstate_toxiproxy` (session: the fault proxy's typed client), `authstate_pg_proxy` (a proxy
in front of the test's database with `.dsn` and `.faults.sever()` ...), `authstate_target_spec`
/ `authstate_target` (the store under test, opened on the test's database), `authstate_chaos`
(the chaos runner). `--authstate-suite NAME` adds the harness's own suites as tests.

Installing the plugin changes nothing until it is used: loading it imports only pytest and the
standard library (pytest-asyncio for the one async fixture), it has no autouse fixture and no
hook that acts unless an `--authstate-*` option is given. Its names never meet the suites' own
(`pg_dsn`, `target`, `--target`, ...), which the clone's conftest.py registers beside it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio

from harness.pytest_plugin.settings import PluginSettings, read_settings, used

if TYPE_CHECKING:
    from harness.faults.client import ToxiproxyClient
    from harness.faults.pg_proxy import PgProxy
    from harness.faults.provision import ProvisionedToxiproxy
    from harness.infra.postgres import PostgresServer
    from harness.pytest_plugin.chaos import ChaosRunner
    from harness.targets import AuthStateTarget, TargetSpec

CLOSE_TIMEOUT_S = 30.0


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("authstate-harness")
    group.addoption("--authstate-target", default=None, metavar="SPEC",
                    help="the auth-state store the authstate_* fixtures test: "
                    "node:path/to/store.js[#export], module.path:factory, path/to/file.py:factory, "
                    "reference or resilient (default: target in [tool.authstate-harness])")
    group.addoption("--authstate-dsn", default=None, metavar="DSN",
                    help="use this PostgreSQL (needs CREATEDB) instead of starting an embedded "
                    "one; also AUTHSTATE_DSN")
    group.addoption("--authstate-suite", action="append", default=[], metavar="NAME",
                    help="also run the harness's own suite NAME (property, bench, chaos, load) "
                    "as a test: one `authstate-harness run` each (repeatable)")
    group.addoption("--authstate-scenario", action="append", default=[], metavar="NAME",
                    help="with --authstate-suite chaos: only this chaos scenario (repeatable)")
    group.addoption("--authstate-reports", default=None, metavar="DIR",
                    help="where --authstate-suite runs write their report folders "
                    "(default: reports/ in the rootdir)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "authstate_suite: a harness suite added by --authstate-suite (select them "
        "with -m authstate_suite)")
    if used(config):
        read_settings(config)  # a bad option or table fails now, before any test runs


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect, so they apply to our items too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if not config.getoption("--authstate-suite"):
        return
    from harness.pytest_plugin.suites import suite_items

    items.extend(suite_items(session, read_settings(config)))


@pytest.fixture(scope="session")
def authstate_settings(pytestconfig: pytest.Config) -> PluginSettings:
    """What the options and [tool.authstate-harness] say (target, dsn, ...)."""
    return read_settings(pytestconfig)


@pytest.fixture(scope="session")
def authstate_postgres(authstate_settings: PluginSettings) -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session: `--authstate-dsn` / AUTHSTATE_DSN, else Docker if
    available, else the embedded binaries (started on 127.0.0.1, stopped at session end)."""
    from harness.infra.postgres import provision_postgres

    with provision_postgres(authstate_settings.dsn) as server:
        yield server


@pytest.fixture
def authstate_dsn(authstate_postgres: PostgresServer) -> Iterator[str]:
    """DSN of a database created for this test alone and dropped after it."""
    from harness.infra.postgres import IsolatedDatabases
    from harness.infra.postgres.external import run_coro_blocking

    databases = IsolatedDatabases(authstate_postgres.dsn, prefix="authstate")
    dsn = run_coro_blocking(databases.create())
    yield dsn
    run_coro_blocking(databases.drop(dsn))


@pytest.fixture(scope="session")
def authstate_fault_proxy() -> Iterator[ProvisionedToxiproxy]:
    """The session's fault proxy server (TOXIPROXY_URL, toxiproxy-server, Docker, or ours
    embedded): `.kind`, `.url`, `.client`."""
    from harness.faults.provision import provision_toxiproxy

    with provision_toxiproxy() as server:
        yield server


@pytest.fixture(scope="session")
def authstate_toxiproxy(authstate_fault_proxy: ProvisionedToxiproxy) -> ToxiproxyClient:
    """The fault proxy's typed client (harness.faults.client.ToxiproxyClient)."""
    return authstate_fault_proxy.client


@pytest.fixture
def authstate_pg_proxy(request: pytest.FixtureRequest, authstate_toxiproxy: ToxiproxyClient,
                       authstate_dsn: str) -> Iterator[PgProxy]:
    """A proxy in front of this test's database: `.dsn` through it, `.direct_dsn`, and
    `.faults` (sever, blackhole, latency, ... as context managers); deleted after the test."""
    from harness.faults.pg_proxy import open_pg_proxy

    test = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")[:48]
    with open_pg_proxy(authstate_toxiproxy, authstate_dsn,
                       f"authstate-{test}-{secrets.token_hex(3)}") as proxy:
        yield proxy


def _resolve(settings: PluginSettings) -> TargetSpec:
    from harness.errors import ConfigError
    from harness.targets import resolve_target

    spec = settings.require_target()
    try:
        return resolve_target(spec)
    except ConfigError as exc:
        raise pytest.UsageError(f"authstate target {spec} ({settings.target_source}): "
                                f"{exc.message}\n  hint: {exc.hint}") from None


@pytest.fixture(scope="session")
def authstate_target_spec(authstate_settings: PluginSettings) -> TargetSpec:
    """The store under test, resolved (a node: module's npm dependencies installed)."""
    return _resolve(authstate_settings)


@pytest_asyncio.fixture
async def authstate_target(authstate_target_spec: TargetSpec, authstate_dsn: str,
                           tmp_path: Path) -> AsyncIterator[AuthStateTarget]:
    """The store opened on this test's database (its cache_dir in tmp_path); closed after."""
    import asyncio

    cache_dir = tmp_path / "authstate-target-cache"
    cache_dir.mkdir(mode=0o700)
    opened = await authstate_target_spec.open(authstate_dsn, cache_dir=cache_dir)
    try:
        yield opened
    finally:
        try:
            await asyncio.wait_for(opened.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            pytest.fail(f"target {authstate_target_spec.name} did not close within "
                        f"{CLOSE_TIMEOUT_S:.0f} s", pytrace=False)


@pytest.fixture(scope="session")
def authstate_chaos(authstate_settings: PluginSettings, authstate_postgres: PostgresServer,
                    authstate_toxiproxy: ToxiproxyClient,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChaosRunner]:
    """The chaos runner: `authstate_chaos.run("sever")` -> ChaosRun (verdict, lost_writes,
    anomalies, rto_s, history, check). Process faults (pg-kill, pg-restart) get a PostgreSQL
    of their own that the harness may kill, started on first use."""
    from harness.chaos.process_server import ProcessServer
    from harness.chaos.scenario import ChaosResources
    from harness.pytest_plugin.chaos import ChaosRunner

    process_server = ProcessServer(authstate_postgres.kind)
    resources = ChaosResources(
        toxiproxy=authstate_toxiproxy, server_admin_dsn=authstate_postgres.dsn,
        server_kind=authstate_postgres.kind, process_server=process_server.get,
        process_skip_reason=lambda: process_server.reason,
        work_dir=tmp_path_factory.mktemp("authstate-chaos"))
    try:
        yield ChaosRunner(resources, lambda: _resolve(authstate_settings),
                          authstate_settings.deadline_s)
    finally:
        process_server.close()
