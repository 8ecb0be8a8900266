"""Our Toxiproxy-compatible fault proxy: an asyncio TCP proxy with Toxiproxy's HTTP API (v2.12).

Start one with `FaultProxyServer` (in a running loop), `EmbeddedServerThread` (in-process, its
own loop in a thread), the `authstate-harness proxy serve` command or `python -m harness.faults`.
Extensions beyond Toxiproxy are documented in `harness/faults/README.md` and `api.py`.
"""

from harness.faults.server.app import FaultProxyServer

__all__ = ["FaultProxyServer"]
