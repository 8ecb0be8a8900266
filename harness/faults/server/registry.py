"""All proxies of a server by name (Toxiproxy's ProxyCollection), plus `/populate` and `/reset`.

Extension: a create or populate entry may carry `"toxics": [...]` (same objects as
`POST /proxies/{name}/toxics`); they are validated with the proxy and are in place before the
first client connects. Real Toxiproxy ignores that key.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from harness.faults.gojson import (
    GoJSONError,
    field_optional_bool,
    field_str,
    is_missing,
    kind_of,
    lookup,
    require_object,
)
from harness.faults.server.api_errors import (
    BAD_REQUEST_BODY,
    MISSING_FIELD,
    PROXY_ALREADY_EXISTS,
    PROXY_NOT_FOUND,
    ApiError,
)
from harness.faults.server.proxy import FaultProxy, ServerContext
from harness.faults.server.toxic_set import ToxicDef, ToxicSet

_POPULATE_GO_TYPE = ('[]struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }')


@dataclasses.dataclass
class ProxySpec:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: list[ToxicDef]


class PopulateError(ApiError):
    """A populate that failed part-way: `applied` lists the proxies already in place."""

    def __init__(self, error: ApiError, applied: list[FaultProxy]) -> None:
        super().__init__(error.message, error.status)
        self.applied = applied


def _parse_spec(obj: Any, where: str = "") -> ProxySpec:
    try:
        obj = require_object(obj, "toxiproxy.Proxy")
        name = field_str(obj, "name", "", "Proxy")
        listen = field_str(obj, "listen", "", "Proxy")
        upstream = field_str(obj, "upstream", "", "Proxy")
        enabled = field_optional_bool(obj, "enabled", "Proxy")
        raw_toxics = lookup(obj, "toxics")
        if is_missing(raw_toxics) or raw_toxics is None:
            raw_toxics = []
        if not isinstance(raw_toxics, list):
            raise GoJSONError(f"cannot use {kind_of(raw_toxics)} as toxics (extension: expects "
                              "an array of toxics)")
    except GoJSONError as exc:
        raise BAD_REQUEST_BODY.joined(str(exc)) from None
    if not name:
        raise MISSING_FIELD.joined(f"name{where}")
    if not upstream:
        raise MISSING_FIELD.joined(f"upstream{where}")
    scratch = ToxicSet()
    toxics = []
    for raw in raw_toxics:
        toxic = scratch.parse_new(raw)
        scratch.add(toxic)
        toxics.append(toxic)
    return ProxySpec(name, listen, upstream, True if enabled is None else enabled, toxics)


async def _differs(existing: FaultProxy, spec: ProxySpec) -> bool:
    """Toxiproxy 2.12's comparison (#631): `listen` resolved, then compared with the bound
    address. A `listen` that does not resolve counts as a change: replacing the proxy then
    fails on it with Go's listen error, as before."""
    try:
        return await existing.differs(spec.listen, spec.upstream)
    except ApiError:
        return True


class ProxyRegistry:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.proxies: dict[str, FaultProxy] = {}
        self.lock = asyncio.Lock()  # API changes are applied one at a time, like Go's mutexes

    def get(self, name: str) -> FaultProxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise PROXY_NOT_FOUND
        return proxy

    async def create(self, body: Any) -> FaultProxy:
        spec = _parse_spec(body)
        if spec.name in self.proxies:
            raise PROXY_ALREADY_EXISTS
        return await self._create(spec)

    async def _create(self, spec: ProxySpec) -> FaultProxy:
        proxy = FaultProxy(self.ctx, spec.name, spec.listen, spec.upstream)
        for toxic in spec.toxics:
            proxy.toxics.add(toxic)
        if spec.enabled:
            await proxy.start(announce=False)  # proxy_created below says enabled + listen
        self.proxies[spec.name] = proxy
        self.ctx.events.emit("proxy_created", spec.name, listen=proxy.listen,
                             upstream=proxy.upstream, enabled=proxy.enabled,
                             toxics=proxy.toxics.to_json())
        return proxy

    async def populate(self, body: Any) -> list[FaultProxy]:
        """Create or replace every proxy in `body` (a JSON array); all entries checked first."""
        if not isinstance(body, list):
            raise BAD_REQUEST_BODY.joined(f"json: cannot unmarshal {kind_of(body)} into Go value "
                                          f"of type {_POPULATE_GO_TYPE}")
        specs: list[ProxySpec] = []
        seen: set[str] = set()
        for i, entry in enumerate(body, start=1):
            spec = _parse_spec(entry, f" at proxy {i}")
            if spec.name in seen:
                raise BAD_REQUEST_BODY.joined(f"duplicate proxy name {spec.name!r} at proxy {i}")
            seen.add(spec.name)
            specs.append(spec)
        applied: list[FaultProxy] = []
        for spec in specs:
            existing = self.proxies.get(spec.name)
            if existing is not None and not await _differs(existing, spec):
                applied.append(existing)
                continue
            try:
                if existing is not None:
                    await self.remove(spec.name, reason="proxy replaced by populate")
                applied.append(await self._create(spec))
            except ApiError as exc:
                raise PopulateError(exc, applied) from None
        return applied

    async def remove(self, name: str, reason: str = "proxy deleted") -> None:
        proxy = self.get(name)
        await proxy.stop(reason)
        del self.proxies[name]
        self.ctx.events.emit("proxy_deleted", name, reason=reason)

    async def reset(self) -> None:
        """Enable every proxy and remove all toxics (stops at the first proxy that cannot bind)."""
        for proxy in list(self.proxies.values()):
            await proxy.start()
            proxy.reset_toxics()

    async def close_all(self, reason: str = "server stopped") -> None:
        for proxy in list(self.proxies.values()):
            await proxy.stop(reason)
