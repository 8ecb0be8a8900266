"""Fault injection: our Toxiproxy-compatible server, a typed client, provisioning and helpers.

- `harness.faults.server`: the asyncio fault proxy with Toxiproxy's HTTP API (v2.12);
- `harness.faults.client`: `ToxiproxyClient` / `AsyncToxiproxyClient`;
- `harness.faults.provision`: `provision_toxiproxy()` (URL > binary > Docker > embedded);
- `harness.faults.helpers`: `Faults` (sever, blackhole, latency, reset_peers, bandwidth,
  limit_data, flap) recording into a `harness.metrics.fault_timeline.FaultTimeline`.
"""

from __future__ import annotations

from typing import Any

# The client (httpx) and the server (aiohttp) load on first use: every CLI call imports this
# package (for `proxy serve`'s options), and most never touch a proxy.
__all__ = [
    "AsyncToxiproxyClient",
    "BadRequestError",
    "ConflictError",
    "NotFoundError",
    "Proxy",
    "Toxic",
    "ToxiproxyClient",
    "ToxiproxyError",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from harness.faults import client

        return getattr(client, name)
    raise AttributeError(f"module 'harness.faults' has no attribute {name!r}")
