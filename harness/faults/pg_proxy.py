"""A fault proxy in front of one PostgreSQL database, and what a test needs around it: the DSN
through the proxy, the direct DSN, and the fault helpers (sever, blackhole, latency...) bound
to it. Used by the suites' `pg_proxy` fixture and the pytest plugin's `authstate_pg_proxy`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

from harness.dsn import host_port, with_host_port
from harness.faults.client import FaultEvent, NotFoundError, Proxy, ToxiproxyClient
from harness.faults.helpers import Faults
from harness.metrics.fault_timeline import FaultTimeline


@dataclasses.dataclass
class PgProxy:
    """A proxy in front of a PostgreSQL database, and what a test needs around it."""

    name: str
    proxy: Proxy  # as created; `refresh()` for the current state
    dsn: str  # through the proxy
    direct_dsn: str  # straight to PostgreSQL
    client: ToxiproxyClient
    faults: Faults

    @property
    def timeline(self) -> FaultTimeline:
        return self.faults.timeline

    @property
    def host(self) -> str:
        return self.proxy.listen_host

    @property
    def port(self) -> int:
        return self.proxy.listen_port

    def refresh(self) -> Proxy:
        self.proxy = self.client.get_proxy(self.name)
        return self.proxy

    def events(self, since: int = 0) -> list[FaultEvent]:
        """The server's event log for this proxy (our embedded server only)."""
        return self.client.events(self.name, since=since)


@contextlib.contextmanager
def open_pg_proxy(client: ToxiproxyClient, dsn: str, name: str,
                  timeline: FaultTimeline | None = None) -> Iterator[PgProxy]:
    """A new proxy `name` to the database of `dsn`, on an ephemeral loopback port; deleted
    (closing its connections) when the block ends, whatever happened in it."""
    host, port = host_port(dsn)
    proxy = client.create_proxy(name, f"{host}:{port}", listen="127.0.0.1:0")
    try:
        yield PgProxy(name=name, proxy=proxy,
                      dsn=with_host_port(dsn, proxy.listen_host, proxy.listen_port),
                      direct_dsn=dsn, client=client,
                      faults=Faults(client, name, timeline or FaultTimeline()))
    finally:
        with contextlib.suppress(NotFoundError):
            client.delete_proxy(name)
