"""Our own server, started for the session: in a subprocess (default) or in a thread.

The subprocess is the default because the proxy sits in the path of every measured operation:
in its own process it has its own interpreter, GIL and event loop (uvloop) and can run on the
other core while the test's loop works, so it adds only its forwarding cost. In a thread it
competes with test code for our GIL and inflates latencies (measured ~1.35x vs ~1.2x direct for
point reads here). The thread mode starts faster and is kept for unit tests and debugging.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import time

from harness.errors import ProvisioningError
from harness.faults.provision.process import ServerProcess, child_env
from harness.faults.provision.readiness import wait_for_api
from harness.faults.server.thread import EmbeddedServerThread


class EmbeddedSubprocess:
    kind = "embedded"

    def __init__(self, *, host: str = "127.0.0.1", seed: int | None = None,
                 proxy_metrics: bool = False, startup_timeout: float = 30.0) -> None:
        # -P: a `harness/` folder in the current directory must not stand in for ours
        argv = [sys.executable, "-P", "-m", "harness.faults", "serve", "--host", host,
                "--port", "0", "--announce"]
        if seed is not None:
            argv += ["--seed", str(seed)]
        if proxy_metrics:
            argv.append("--proxy-metrics")
        self.process = ServerProcess(argv, stdout=subprocess.PIPE, env=child_env(),
                                     name="fault-proxy")
        try:
            announced = self._read_announcement(startup_timeout)
            self.url = str(announced["url"])
            self.seed = int(announced["seed"])
            self.version = wait_for_api(self.url, timeout=startup_timeout,
                                        alive=self.process.alive,
                                        describe=self.process.describe)
        except BaseException:
            self.process.stop()
            raise

    def _read_announcement(self, timeout: float) -> dict[str, object]:
        stdout = self.process.proc.stdout
        assert stdout is not None
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if sel.select(min(0.2, max(deadline - time.monotonic(), 0))):
                    line = stdout.readline()
                    if line:
                        return json.loads(line)
                    break  # EOF: the server exited
                if not self.process.alive():
                    break
        raise ProvisioningError(
            f"the embedded fault proxy did not start{self.process.describe()}",
            hint="run `python -m harness.faults serve --port 0` to see why; or set "
            "AUTHSTATE_TOXIPROXY=embedded-thread")

    def close(self) -> None:
        self.process.stop()


class EmbeddedThread:
    kind = "embedded-thread"

    def __init__(self, *, host: str = "127.0.0.1", seed: int | None = None,
                 proxy_metrics: bool = False) -> None:
        self.server_thread = EmbeddedServerThread(host=host, seed=seed,
                                                  proxy_metrics=proxy_metrics).start()
        self.url = self.server_thread.url
        self.seed = self.server_thread.server.seed
        self.version = wait_for_api(self.url, timeout=10)

    def close(self) -> None:
        self.server_thread.stop()
