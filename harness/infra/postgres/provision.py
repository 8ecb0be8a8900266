"""The PostgreSQL provisioning chain: DSN > Docker (testcontainers) > embedded.

`AUTHSTATE_PG=embedded|container|external` forces one link of the chain.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

from harness.dsn import check_dsn
from harness.errors import ConfigError, ProvisioningError

log = logging.getLogger(__name__)

KINDS = ("embedded", "container", "external")


class PostgresServer(Protocol):
    """What every provisioned server offers, whoever runs it."""

    kind: str
    dsn: str  # a DSN with rights to create databases (or at least schemas)
    host: str
    port: int
    version: str

    def close(self) -> None: ...


def choose_kind(dsn: str | None, prefer: str | None = None) -> str:
    prefer = prefer or os.environ.get("AUTHSTATE_PG") or None
    if prefer is not None and prefer not in KINDS:
        raise ConfigError(f"unknown PostgreSQL provider {prefer!r}",
                          hint=f"use one of: {', '.join(KINDS)}")
    if prefer == "external" or (prefer is None and dsn):
        if not dsn:
            raise ConfigError("AUTHSTATE_PG=external needs a DSN",
                              hint="pass --dsn or set AUTHSTATE_DSN")
        return "external"
    if prefer:
        return prefer
    from harness.infra.docker import docker_engine_available

    return "container" if docker_engine_available() else "embedded"


@contextmanager
def provision_postgres(dsn: str | None = None, *, prefer: str | None = None
                       ) -> Iterator[PostgresServer]:
    """Yield a running server; stop whatever we started on exit, error or Ctrl-C."""
    dsn = dsn or os.environ.get("AUTHSTATE_DSN") or None
    kind = choose_kind(dsn, prefer)
    server: PostgresServer
    if kind == "external":
        from harness.infra.postgres.external import ExternalPostgres

        server = ExternalPostgres(check_dsn(dsn or ""))  # a key=value DSN becomes a URL
    elif kind == "container":
        from harness.infra.postgres.container import ContainerPostgres

        server = ContainerPostgres().start()
    else:
        from harness.infra.postgres.embedded import EmbeddedPostgres

        try:
            server = EmbeddedPostgres().start()
        except ProvisioningError:
            raise
        except OSError as exc:
            raise ProvisioningError(
                f"could not start the embedded PostgreSQL: {exc}",
                hint="pass --dsn to use an existing server, or run where Docker is available",
            ) from exc
    log.info("PostgreSQL %s (%s) at %s:%s", server.version, server.kind, server.host, server.port)
    try:
        yield server
    finally:
        server.close()
