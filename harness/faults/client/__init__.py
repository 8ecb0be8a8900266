"""A small typed client for Toxiproxy's HTTP API, sync and async, with timeouts and errors that
carry the server's status and message. Works against our server and the real Toxiproxy.
"""

from harness.faults.client.async_client import AsyncToxiproxyClient
from harness.faults.client.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    ToxiproxyError,
    ToxiproxyUnavailable,
)
from harness.faults.client.models import FaultEvent, Proxy, Toxic
from harness.faults.client.sync_client import DEFAULT_URL, ToxiproxyClient

__all__ = [
    "DEFAULT_URL",
    "AsyncToxiproxyClient",
    "BadRequestError",
    "ConflictError",
    "FaultEvent",
    "NotFoundError",
    "Proxy",
    "Toxic",
    "ToxiproxyClient",
    "ToxiproxyError",
    "ToxiproxyUnavailable",
]
