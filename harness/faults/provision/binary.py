"""A real `toxiproxy-server` found on PATH, started on a free port for the session."""

from __future__ import annotations

import shutil

from harness.errors import ProvisioningError
from harness.faults.provision.process import ServerProcess
from harness.faults.provision.readiness import wait_for_api
from harness.infra.ports import free_port

BINARY = "toxiproxy-server"


def find_binary() -> str | None:
    return shutil.which(BINARY)


class BinaryToxiproxy:
    kind = "binary"

    def __init__(self, *, seed: int | None = None, startup_timeout: float = 15.0) -> None:
        path = find_binary()
        if path is None:
            raise ProvisioningError(f"{BINARY} is not on PATH",
                                    hint="install Toxiproxy, or let the harness use its own "
                                    "server (unset AUTHSTATE_TOXIPROXY)")
        last: ProvisioningError | None = None
        for _attempt in range(3):  # the free port can be taken before the server binds it
            port = free_port()
            argv = [path, "-host", "127.0.0.1", "-port", str(port)]
            if seed is not None:
                argv += ["-seed", str(seed)]
            self.process = ServerProcess(argv, name="toxiproxy-server")
            self.url = f"http://127.0.0.1:{port}"
            try:
                self.version = wait_for_api(self.url, timeout=startup_timeout,
                                            alive=self.process.alive,
                                            describe=self.process.describe)
                return
            except ProvisioningError as exc:
                self.process.stop()
                last = exc
        assert last is not None
        raise last

    def close(self) -> None:
        self.process.stop()
