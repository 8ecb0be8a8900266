"""A Toxiproxy the user already runs (`TOXIPROXY_URL`); we check it answers and never stop it."""

from __future__ import annotations

from harness.faults.provision.readiness import wait_for_api


class ExternalToxiproxy:
    kind = "external"

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        if "://" not in self.url:
            self.url = f"http://{self.url}"
        self.version = wait_for_api(self.url, timeout=timeout)

    def close(self) -> None:
        """Not ours to stop."""
