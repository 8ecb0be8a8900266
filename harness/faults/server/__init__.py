"""Our Toxiproxy-compatible fault proxy: an asyncio TCP proxy with Toxiproxy's HTTP API (v2.12).

Start one with `FaultProxyServer` (in a running loop), `EmbeddedServerThread` (in-process, its
own loop in a thread), the `authstate-harness proxy serve` command or `python -m harness.faults`.
Extensions beyond Toxiproxy are documented in `harness/faults/README.md` and `api.py`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FaultProxyServer"]


def __getattr__(name: str) -> Any:
    """`FaultProxyServer` loads aiohttp on first use, not when `options` is imported."""
    if name == "FaultProxyServer":
        from harness.faults.server.app import FaultProxyServer

        return FaultProxyServer
    raise AttributeError(f"module 'harness.faults.server' has no attribute {name!r}")
