"""Toxiproxy in Docker (ghcr.io/shopify/toxiproxy) via testcontainers, when an engine answers.

The container uses the host's network, so proxies it creates can reach an upstream on the
host's 127.0.0.1 (our PostgreSQL) and their listen ports are reachable from the tests; that
needs a Linux Docker engine (Docker Desktop's host networking differs).
"""

from __future__ import annotations

from harness.errors import ProvisioningError
from harness.faults.provision.readiness import wait_for_api
from harness.infra.ports import free_port

DEFAULT_IMAGE = "ghcr.io/shopify/toxiproxy:2.12.0"


class ContainerToxiproxy:
    kind = "container"

    def __init__(self, image: str = DEFAULT_IMAGE, *, startup_timeout: float = 60.0) -> None:
        port = free_port()
        try:
            from testcontainers.core.container import DockerContainer

            container = (DockerContainer(image)
                         .with_command(f"-host 127.0.0.1 -port {port}")
                         .with_kwargs(network_mode="host"))
            self._container = container.start()
        except Exception as exc:
            raise ProvisioningError(f"could not start a Toxiproxy container ({image}): {exc}",
                                    hint="check `docker info`; or set "
                                    "AUTHSTATE_TOXIPROXY=embedded") from exc
        self.url = f"http://127.0.0.1:{port}"
        try:
            self.version = wait_for_api(self.url, timeout=startup_timeout)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        container, self._container = getattr(self, "_container", None), None
        if container is not None:
            container.stop()
