"""PostgreSQL in a Docker container via testcontainers, used when a Docker engine answers."""

from __future__ import annotations

from harness.errors import ProvisioningError

DEFAULT_IMAGE = "postgres:16-alpine"


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
