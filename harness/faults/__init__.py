"""Fault injection: our Toxiproxy-compatible server, a typed client, provisioning and helpers.

- `harness.faults.server`: the asyncio fault proxy with Toxiproxy's HTTP API (v2.12);
- `harness.faults.client`: `ToxiproxyClient` / `AsyncToxiproxyClient`;
- `harness.faults.provision`: `provision_toxiproxy()` (URL > binary > Docker > embedded);
- `harness.faults.helpers`: `Faults` (sever, blackhole, latency, reset_peers, bandwidth,
  limit_data, flap) recording into a `harness.metrics.fault_timeline.FaultTimeline`.
"""

from harness.faults.client import (
    AsyncToxiproxyClient,
    BadRequestError,
    ConflictError,
    NotFoundError,
    Proxy,
    Toxic,
    ToxiproxyClient,
    ToxiproxyError,
)

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
