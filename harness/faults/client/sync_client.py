"""Blocking client for a Toxiproxy server (ours or the real one)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Self, TypeVar

import httpx

from harness import __version__
from harness.faults.client import calls
from harness.faults.client.errors import ToxiproxyUnavailable, error_from_response
from harness.faults.client.models import FaultEvent, Proxy, Toxic

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8474"
DEFAULT_TIMEOUT = 10.0
USER_AGENT = f"authstate-harness/{__version__} (toxiproxy client)"


def make_timeout(timeout: float) -> httpx.Timeout:
    return httpx.Timeout(timeout, connect=min(timeout, 5.0))


class ToxiproxyClient:
    """One server, one connection pool; every call has a timeout; errors carry the status."""

    def __init__(self, url: str = DEFAULT_URL, *, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=make_timeout(timeout),
                                  headers={"User-Agent": USER_AGENT}, transport=transport)

    def send(self, call: calls.Call[T]) -> T:
        """Send one prepared call (see `calls`); raises ToxiproxyError on an error status."""
        try:
            response = self._http.request(call.method, call.path, json=call.body,
                                          params=call.params)
        except httpx.TransportError as exc:
            raise ToxiproxyUnavailable(self.url, exc) from exc
        if response.status_code >= 400:
            raise error_from_response(response)
        return call.parse(response)

    # -- server --------------------------------------------------------------------------------
    def version(self) -> str:
        return self.send(calls.version())

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self.send(calls.reset())

    # -- proxies -------------------------------------------------------------------------------
    def proxies(self) -> dict[str, Proxy]:
        return self.send(calls.proxies())

    def get_proxy(self, name: str) -> Proxy:
        return self.send(calls.get_proxy(name))

    def create_proxy(self, name: str, upstream: str, *, listen: str = "127.0.0.1:0",
                     enabled: bool = True,
                     toxics: Sequence[Mapping[str, Any]] | None = None) -> Proxy:
        return self.send(calls.create_proxy(name, upstream, listen, enabled, toxics))

    def update_proxy(self, name: str, *, listen: str | None = None,
                     upstream: str | None = None, enabled: bool | None = None) -> Proxy:
        return self.send(calls.update_proxy(name, listen, upstream, enabled))

    def enable_proxy(self, name: str) -> Proxy:
        return self.update_proxy(name, enabled=True)

    def disable_proxy(self, name: str) -> Proxy:
        """Close the listener and every connection of the proxy (it keeps its toxics)."""
        return self.update_proxy(name, enabled=False)

    def delete_proxy(self, name: str) -> None:
        self.send(calls.delete_proxy(name))

    def populate(self, entries: Sequence[Mapping[str, Any]]) -> list[Proxy]:
        return self.send(calls.populate(entries))

    # -- toxics --------------------------------------------------------------------------------
    def toxics(self, proxy: str) -> list[Toxic]:
        return self.send(calls.toxics(proxy))

    def get_toxic(self, proxy: str, name: str) -> Toxic:
        return self.send(calls.get_toxic(proxy, name))

    def add_toxic(self, proxy: str, type: str, *, stream: str = "downstream",
                  name: str | None = None, toxicity: float = 1.0,
                  attributes: Mapping[str, Any] | None = None) -> Toxic:
        return self.send(calls.add_toxic(proxy, type, stream, name, toxicity, attributes))

    def update_toxic(self, proxy: str, name: str, *,
                           attributes: Mapping[str, Any] | None = None,
                           toxicity: float | None = None) -> Toxic:
        return self.send(calls.update_toxic(proxy, name, attributes, toxicity))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self.send(calls.remove_toxic(proxy, name))

    # -- extensions (our server only; a real Toxiproxy answers 404) ----------------------------
    def events(self, proxy: str | None = None, *, since: int = 0) -> list[FaultEvent]:
        return self.send(calls.events(proxy, since))

    def connections(self, proxy: str) -> list[dict[str, Any]]:
        return self.send(calls.connections(proxy))

    # -- lifecycle -----------------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ToxiproxyClient {self.url}>"
