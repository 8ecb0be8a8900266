"""Where a load run goes: a fresh database, a fault proxy in front of it, optionally a role.

Shared by `authstate-harness load` (which provisions PostgreSQL and the fault proxy first, like
`run`) and the load suite (which gets them from the session's fixtures). Everything made here
is removed on exit, whatever happened: the proxy, the role, the database.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Iterator
from typing import Any

from harness.chaos.nemesis_api import DEFAULT_DEADLINE_S, ChaosEnv
from harness.dsn import host_port, with_host_port
from harness.faults.client import NotFoundError, ToxiproxyClient
from harness.faults.helpers import Faults
from harness.infra.postgres import IsolatedDatabases
from harness.infra.postgres.external import run_coro_blocking
from harness.infra.postgres.roles import login_role
from harness.load.runner import LoadEnv
from harness.metrics.fault_timeline import FaultTimeline

log = logging.getLogger("harness.load")


@contextlib.contextmanager
def load_database(server_admin_dsn: str, toxiproxy: ToxiproxyClient | None, *,
                  own_role: bool = False, deadline_s: float = DEFAULT_DEADLINE_S
                  ) -> Iterator[LoadEnv]:
    """A fresh database (dropped after), reached through a proxy of its own when `toxiproxy`
    is given; `own_role`: the target logs in as a LOGIN role owning the database (role
    faults act on it)."""
    databases = IsolatedDatabases(server_admin_dsn, prefix="load")
    database_dsn = run_coro_blocking(databases.create())
    with contextlib.ExitStack() as stack:
        stack.callback(lambda: _quietly("dropping the load database",
                                        lambda: run_coro_blocking(databases.drop(database_dsn))))
        app_dsn, role_name = database_dsn, None
        if own_role:
            manager = login_role(server_admin_dsn, database_dsn)
            role = run_coro_blocking(manager.__aenter__())
            stack.callback(lambda: _quietly("dropping the load role", lambda: run_coro_blocking(
                manager.__aexit__(None, None, None))))
            app_dsn, role_name = role.dsn, role.name
        if toxiproxy is None:
            yield LoadEnv(dsn=app_dsn, admin_dsn=database_dsn)
            return
        name = f"load-{secrets.token_hex(4)}"
        host, port = host_port(database_dsn)
        proxy = toxiproxy.create_proxy(name, f"{host}:{port}", listen="127.0.0.1:0")
        stack.callback(lambda: _quietly("deleting the load proxy",
                                        lambda: _delete_proxy(toxiproxy, name)))
        proxy_dsn = with_host_port(app_dsn, proxy.listen_host, proxy.listen_port)

        def make_chaos_env(timeline: FaultTimeline) -> ChaosEnv:
            return ChaosEnv(faults=Faults(toxiproxy, name, timeline), timeline=timeline,
                            proxy_dsn=proxy_dsn, direct_dsn=app_dsn, admin_dsn=database_dsn,
                            app_role=role_name, server=None, deadline_s=deadline_s,
                            database=database_dsn.rsplit("/", 1)[-1].split("?", 1)[0])

        yield LoadEnv(dsn=proxy_dsn, admin_dsn=database_dsn, make_chaos_env=make_chaos_env)


def _delete_proxy(client: ToxiproxyClient, name: str) -> None:
    with contextlib.suppress(NotFoundError):
        client.delete_proxy(name)


def _quietly(what: str, action: Any) -> None:
    try:
        action()
    except Exception as exc:  # cleanup must not hide the run's own error
        log.warning("load cleanup: %s failed: %s: %s", what, type(exc).__name__, exc)
