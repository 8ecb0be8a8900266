"""PostgreSQL in a Docker container via testcontainers, used when a Docker engine answers."""

from __future__ import annotations

import logging

from harness.errors import ProvisioningError

log = logging.getLogger(__name__)

DEFAULT_IMAGE = "postgres:16-alpine"


def docker_engine_available(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers a ping (a docker CLI alone is not enough)."""
    try:
        import docker

        client = docker.from_env(timeout=int(max(timeout, 1)))
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception as exc:  # any failure means "no usable engine"
        log.debug("no Docker engine: %s", exc)
        return False


class ContainerPostgres:
    kind = "container"

    def __init__(self, image: str = DEFAULT_IMAGE) -> None:
        self.image = image
        self._container = None
        self.dsn = ""
        self.host, self.port, self.version = "", 0, ""

    def start(self) -> ContainerPostgres:
        try:
            from testcontainers.postgres import PostgresContainer

            self._container = PostgresContainer(self.image, driver=None).start()
        except Exception as exc:
            raise ProvisioningError(
                f"could not start a PostgreSQL container ({self.image}): {exc}",
                hint="check `docker info`; or set AUTHSTATE_PG=embedded to use the embedded server",
            ) from exc
        c = self._container
        self.host = c.get_container_host_ip()
        self.port = int(c.get_exposed_port(5432))
        self.dsn = f"postgresql://{c.username}:{c.password}@{self.host}:{self.port}/{c.dbname}"
        from harness.infra.postgres.external import probe_server

        self.version = probe_server(self.dsn, timeout=30)
        return self

    def close(self) -> None:
        if self._container is not None:
            self._container.stop()
            self._container = None
