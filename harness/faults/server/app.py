"""The fault proxy server in the current event loop: the HTTP API plus every proxy it manages."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from harness.errors import ConfigError, ProvisioningError
from harness.faults.gojson import kind_of
from harness.faults.server.addresses import format_address
from harness.faults.server.api import build_app
from harness.faults.server.api_errors import ApiError
from harness.faults.server.events import DEFAULT_CAPACITY, EventLog
from harness.faults.server.proxy import FaultProxy, ServerContext
from harness.faults.server.randomness import RandomSource
from harness.faults.server.registry import ProxyRegistry

log = logging.getLogger("harness.faults.server")


class FaultProxyServer:
    """Start with `await start(host, port)`, stop with `await close()` (closes everything)."""

    def __init__(self, *, seed: int | None = None, proxy_metrics: bool = False,
                 event_capacity: int = DEFAULT_CAPACITY) -> None:
        self.ctx = ServerContext(EventLog(event_capacity), RandomSource(seed))
        self.registry = ProxyRegistry(self.ctx)
        self.proxy_metrics = proxy_metrics
        self._runner: web.AppRunner | None = None
        self.host = ""
        self.port = 0

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def seed(self) -> int:
        return self.ctx.random.seed

    async def start(self, host: str = "127.0.0.1", port: int = 8474) -> str:
        """Serve the API on host:port (0 = any free port); returns the base URL."""
        runner = web.AppRunner(build_app(self.registry, proxy_metrics=self.proxy_metrics),
                               access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ProvisioningError(
                f"the fault proxy API cannot listen on {host}:{port}: "
                f"{exc.strerror or exc}",
                hint="another toxiproxy-server may be running there; pick another --port "
                "(0 = any free port)") from exc
        self._runner = runner
        address = runner.addresses[0]
        self.host = str(address[0])
        self.port = int(address[1])
        log.info("fault proxy API (Toxiproxy 2.12 compatible) on %s (%s; seed %d)",
                 format_address(address), self.url, self.seed)
        return self.url

    async def populate(self, entries: list[Any]) -> list[FaultProxy]:
        async with self.registry.lock:
            return await self.registry.populate(entries)

    async def load_config(self, path: str | Path) -> list[FaultProxy]:
        """Create the proxies in a JSON file (the `/populate` body); ConfigError names the file."""
        entries = read_config(path)
        try:
            return await self.populate(entries)
        except ApiError as exc:
            raise ConfigError(f"proxy config {path}: {exc.message}",
                              hint="fix the entry it names (same format as POST /populate)") \
                from None

    async def close(self) -> None:
        await self.registry.close_all("server stopped")
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


def read_config(path: str | Path) -> list[Any]:
    """A proxy config file's entries, or a ConfigError saying what is wrong with it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read proxy config {path}: {exc.strerror or exc}",
                          hint="pass the path of a JSON file (the body of POST /populate)") \
            from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"proxy config {path} is not UTF-8 text: {exc.reason}",
                          hint="save it as UTF-8 JSON") from None
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"proxy config {path} is not valid JSON: {exc.msg} at line "
                          f"{exc.lineno} column {exc.colno}",
                          hint='expected e.g. [{"name": "pg", "listen": "127.0.0.1:15432", '
                          '"upstream": "127.0.0.1:5432"}]') from None
    if not isinstance(entries, list):
        raise ConfigError(f"proxy config {path} must be a JSON array of proxies, "
                          f"not {kind_of(entries)}",
                          hint="wrap the proxy objects in [ ... ] (same as POST /populate)")
    return entries
