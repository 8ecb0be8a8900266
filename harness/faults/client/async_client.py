"""Asyncio client for a Toxiproxy server: the same calls as `ToxiproxyClient`, awaited."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self, TypeVar

import httpx

from harness.faults.client import calls
from harness.faults.client.errors import ToxiproxyUnavailable, error_from_response
from harness.faults.client.models import FaultEvent, Proxy, Toxic
from harness.faults.client.sync_client import (
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    USER_AGENT,
    make_timeout,
)

T = TypeVar("T")


class AsyncToxiproxyClient:
    """One server, one connection pool; every call has a timeout; errors carry the status."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(base_url=self.url, timeout=make_timeout(timeout),
                                       headers={"User-Agent": USER_AGENT}, transport=transport)

    async def send(self, call: calls.Call[T]) -> T:
        """Send one prepared call (see `calls`); raises ToxiproxyError on an error status."""
        try:
            response = await self._http.request(call.method, call.path, json=call.body,
                                                params=call.params)
        except httpx.TransportError as exc:
            raise ToxiproxyUnavailable(self.url, exc) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return call.parse(response)

    # -- server --------------------------------------------------------------------------------
    async def version(self) -> str:
        return await self.send(calls.version())

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        await self.send(calls.reset())

    # -- proxies -------------------------------------------------------------------------------
    async def proxies(self) -> dict[str, Proxy]:
        return await self.send(calls.proxies())

    async def get_proxy(self, name: str) -> Proxy:
        return await self.send(calls.get_proxy(name))

    async def create_proxy(self, name: str, upstream: str, *, listen: str = "127.0.0.1:0",
                           enabled: bool = True,
                           toxics: Sequence[Mapping[str, Any]] | None = None) -> Proxy:
        return await self.send(calls.create_proxy(name, upstream, listen, enabled, toxics))

    async def update_proxy(self, name: str, *, listen: str | None = None,
                           upstream: str | None = None, enabled: bool | None = None) -> Proxy:
        return await self.send(calls.update_proxy(name, listen, upstream, enabled))

    async def enable_proxy(self, name: str) -> Proxy:
        return await self.update_proxy(name, enabled=True)

    async def disable_proxy(self, name: str) -> Proxy:
        """Close the listener and every connection of the proxy (it keeps its toxics)."""
        return await self.update_proxy(name, enabled=False)

    async def delete_proxy(self, name: str) -> None:
        await self.send(calls.delete_proxy(name))

    async def populate(self, entries: Sequence[Mapping[str, Any]]) -> list[Proxy]:
        return await self.send(calls.populate(entries))

    # -- toxics --------------------------------------------------------------------------------
    async def toxics(self, proxy: str) -> list[Toxic]:
        return await self.send(calls.toxics(proxy))

    async def get_toxic(self, proxy: str, name: str) -> Toxic:
        return await self.send(calls.get_toxic(proxy, name))

    async def add_toxic(self, proxy: str, type: str, *, stream: str = "downstream",
                        name: str | None = None, toxicity: float = 1.0,
                        attributes: Mapping[str, Any] | None = None) -> Toxic:
        return await self.send(calls.add_toxic(proxy, type, stream, name, toxicity, attributes))

    async def update_toxic(self, proxy: str, name: str, *,
                           attributes: Mapping[str, Any] | None = None,
                           toxicity: float | None = None) -> Toxic:
        return await self.send(calls.update_toxic(proxy, name, attributes, toxicity))

    async def remove_toxic(self, proxy: str, name: str) -> None:
        await self.send(calls.remove_toxic(proxy, name))

    # -- extensions (our server only; a real Toxiproxy answers 404) ----------------------------
    async def events(self, proxy: str | None = None, *, since: int = 0) -> list[FaultEvent]:
        return await self.send(calls.events(proxy, since))

    async def connections(self, proxy: str) -> list[dict[str, Any]]:
        return await self.send(calls.connections(proxy))

    # -- lifecycle -----------------------------------------------------------------------------
    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncToxiproxyClient {self.url}>"
