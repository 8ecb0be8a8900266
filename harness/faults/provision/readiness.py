"""Wait until a Toxiproxy API answers `GET /version` (every provider uses this)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from harness.errors import ProvisioningError


def wait_for_api(url: str, *, timeout: float, alive: Callable[[], bool] = lambda: True,
                 describe: Callable[[], str] = lambda: "") -> str:
    """The server's version once `url` answers; ProvisioningError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    with httpx.Client(base_url=url, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if not alive():
                break
            try:
                response = http.get("/version")
                if response.status_code == 200:
                    return str(response.json().get("version", "?"))
                last = RuntimeError(f"HTTP {response.status_code}")
            except (httpx.HTTPError, ValueError) as exc:
                last = exc
            time.sleep(0.05)
    raise ProvisioningError(
        f"no Toxiproxy API answered at {url} ({type(last).__name__ if last else 'exited'}: "
        f"{last or 'the server process ended'}){describe()}",
        hint="see the server output above; AUTHSTATE_TOXIPROXY=embedded uses the built-in server")
