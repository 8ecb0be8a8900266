"""Each API call once: the HTTP request to make and how to read the answer.

Both clients (sync and async) send these; keeping the definitions here means the two flavours
cannot drift apart.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from harness.faults.client.models import FaultEvent, Proxy, Toxic

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Call(Generic[T]):
    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    body: Any = None
    params: Mapping[str, Any] | None = None


def _seg(name: str) -> str:
    return quote(name, safe="")


def _none(_: httpx.Response) -> None:
    return None


def version() -> Call[str]:
    return Call("GET", "/version", lambda r: str(r.json()["version"]))


def proxies() -> Call[dict[str, Proxy]]:
    return Call("GET", "/proxies",
                lambda r: {name: Proxy.from_json(p) for name, p in r.json().items()})


def get_proxy(name: str) -> Call[Proxy]:
    return Call("GET", f"/proxies/{_seg(name)}", lambda r: Proxy.from_json(r.json()))


def create_proxy(name: str, upstream: str, listen: str, enabled: bool,
                 toxics: Sequence[Mapping[str, Any]] | None) -> Call[Proxy]:
    body: dict[str, Any] = {"name": name, "upstream": upstream, "listen": listen,
                            "enabled": enabled}
    if toxics:
        body["toxics"] = list(toxics)  # extension: ignored by a real Toxiproxy
    return Call("POST", "/proxies", lambda r: Proxy.from_json(r.json()), body)


def update_proxy(name: str, listen: str | None, upstream: str | None,
                 enabled: bool | None) -> Call[Proxy]:
    body = {k: v for k, v in (("listen", listen), ("upstream", upstream), ("enabled", enabled))
            if v is not None}
    return Call("PATCH", f"/proxies/{_seg(name)}", lambda r: Proxy.from_json(r.json()), body)


def delete_proxy(name: str) -> Call[None]:
    return Call("DELETE", f"/proxies/{_seg(name)}", _none)


def populate(entries: Sequence[Mapping[str, Any]]) -> Call[list[Proxy]]:
    return Call("POST", "/populate",
                lambda r: [Proxy.from_json(p) for p in r.json().get("proxies") or ()],
                list(entries))


def toxics(proxy: str) -> Call[list[Toxic]]:
    return Call("GET", f"/proxies/{_seg(proxy)}/toxics",
                lambda r: [Toxic.from_json(t) for t in r.json()])


def get_toxic(proxy: str, name: str) -> Call[Toxic]:
    return Call("GET", f"/proxies/{_seg(proxy)}/toxics/{_seg(name)}",
                lambda r: Toxic.from_json(r.json()))


def add_toxic(proxy: str, type_: str, stream: str, name: str | None, toxicity: float,
              attributes: Mapping[str, Any] | None) -> Call[Toxic]:
    body: dict[str, Any] = {"type": type_, "stream": stream, "toxicity": toxicity,
                            "attributes": dict(attributes or {})}
    if name:
        body["name"] = name
    return Call("POST", f"/proxies/{_seg(proxy)}/toxics", lambda r: Toxic.from_json(r.json()),
                body)


def update_toxic(proxy: str, name: str, attributes: Mapping[str, Any] | None,
                 toxicity: float | None) -> Call[Toxic]:
    body: dict[str, Any] = {}
    if attributes is not None:
        body["attributes"] = dict(attributes)
    if toxicity is not None:
        body["toxicity"] = toxicity
    return Call("PATCH", f"/proxies/{_seg(proxy)}/toxics/{_seg(name)}",
                lambda r: Toxic.from_json(r.json()), body)


def remove_toxic(proxy: str, name: str) -> Call[None]:
    return Call("DELETE", f"/proxies/{_seg(proxy)}/toxics/{_seg(name)}", _none)


def reset() -> Call[None]:
    return Call("POST", "/reset", _none)


def events(proxy: str | None, since: int) -> Call[list[FaultEvent]]:
    path = f"/proxies/{_seg(proxy)}/events" if proxy else "/events"
    return Call("GET", path, lambda r: [FaultEvent.from_json(e) for e in r.json()["events"]],
                params={"since": since})


def connections(proxy: str) -> Call[list[dict[str, Any]]]:
    return Call("GET", f"/proxies/{_seg(proxy)}/connections", lambda r: list(r.json()))
