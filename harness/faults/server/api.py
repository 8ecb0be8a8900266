"""Toxiproxy's HTTP API (v2.12) on aiohttp, answered the way Toxiproxy's gorilla/mux router does.

Routing: a path that matches no route is 404 `404 page not found`; a path that matches with the
wrong method is 405 with an empty body. On matched routes a `Mozilla/` user agent gets 403
`User agent not allowed`. Errors are `{"error": ..., "status": ...}` + newline with Content-Type
text/plain (as Go's http.Error writes them); successes are compact JSON with application/json.
Every response carries `X-Toxiproxy-Request-Id` (a 20-character xid, like Toxiproxy's).

Extensions (not in Toxiproxy; real Toxiproxy answers them 404):
- `GET /proxies/{name}/events?since=N`: that proxy's event log (connections opened, closed,
  reset, upstream unreachable; toxics added/updated/removed; proxy enabled/disabled), each
  event with `seq`, `monotonic` and `wall` times; `GET /events?since=N` for all proxies.
- `GET /proxies/{name}/connections`: live connections with per-direction byte counters and
  which toxics were rolled in.
- `"toxics": [...]` in `POST /proxies` and `/populate` entries (see registry.py).
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from harness.faults.gojson import GoJSONError, decode_body, field_bool, field_str, require_object
from harness.faults.server.api_errors import BAD_REQUEST_BODY, ApiError
from harness.faults.server.metrics import render_proxy_metrics
from harness.faults.server.registry import PopulateError, ProxyRegistry

log = logging.getLogger("harness.faults.server.api")

TOXIPROXY_VERSION = "2.12.0"
SERVER_HEADER = "authstate-harness-fault-proxy"
REQUEST_ID_HEADER = "X-Toxiproxy-Request-Id"

Handler = Callable[["ApiHandlers", web.Request, dict[str, str]], Awaitable[web.Response]]


class RequestIds:
    """xid-style ids: 4-byte time, 5 random bytes, 3-byte counter, base32hex (20 chars)."""

    def __init__(self) -> None:
        self._machine = secrets.token_bytes(3) + (os.getpid() & 0xFFFF).to_bytes(2, "big")
        self._counter = itertools.count(secrets.randbits(24))

    def next(self) -> str:
        raw = (int(time.time()).to_bytes(4, "big") + self._machine
               + (next(self._counter) & 0xFFFFFF).to_bytes(3, "big"))
        return base64.b32hexencode(raw).decode().lower().rstrip("=")


def _json_body(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(_go_numbers(obj), separators=(",", ":")).encode(),
                        status=status, content_type="application/json")


def _go_numbers(obj: Any) -> Any:
    """Go prints float32(1) as `1`; keep integral toxicities integral in our JSON too."""
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    if isinstance(obj, dict):
        return {k: _go_numbers(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_go_numbers(v) for v in obj]
    return obj


def _text(body: str, status: int) -> web.Response:
    resp = web.Response(body=body.encode(), status=status)
    resp.headers["Content-Type"] = "text/plain; charset=utf-8"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def error_response(exc: ApiError) -> web.Response:
    body = json.dumps({"error": exc.message, "status": exc.status}, separators=(",", ":"))
    return _text(body + "\n", exc.status)


def _no_content() -> web.Response:
    return web.Response(status=204)


async def _read_json(request: web.Request) -> Any:
    try:
        return decode_body(await request.read())
    except GoJSONError as exc:
        raise BAD_REQUEST_BODY.joined(str(exc)) from None


class ApiHandlers:
    """The endpoint implementations; `routes` maps path patterns to method handlers."""

    def __init__(self, registry: ProxyRegistry, *, proxy_metrics: bool = False) -> None:
        self.registry = registry
        self.proxy_metrics = proxy_metrics

    # -- proxies -------------------------------------------------------------------------------
    async def proxy_index(self, request: web.Request, v: dict[str, str]) -> web.Response:
        return _json_body({name: p.to_json() for name, p in sorted(self.registry.proxies.items())})

    async def proxy_create(self, request: web.Request, v: dict[str, str]) -> web.Response:
        body = await _read_json(request)
        async with self.registry.lock:
            proxy = await self.registry.create(body)
        return _json_body(proxy.to_json(), 201)

    async def populate(self, request: web.Request, v: dict[str, str]) -> web.Response:
        try:
            body = await _read_json(request)
            async with self.registry.lock:
                proxies = await self.registry.populate(body)
        except PopulateError as exc:
            applied = [p.to_json() for p in exc.applied] or None
            return _json_body({"error": exc.message, "status": exc.status, "proxies": applied},
                              exc.status)
        except ApiError as exc:
            return _json_body({"error": exc.message, "status": exc.status, "proxies": None},
                              exc.status)
        return _json_body({"proxies": [p.to_json() for p in proxies] or None}, 201)

    async def proxy_show(self, request: web.Request, v: dict[str, str]) -> web.Response:
        return _json_body(self.registry.get(v["proxy"]).to_json())

    async def proxy_update(self, request: web.Request, v: dict[str, str]) -> web.Response:
        proxy = self.registry.get(v["proxy"])
        body = await _read_json(request)
        try:
            obj = require_object(body, "toxiproxy.Proxy")
            listen = field_str(obj, "listen", proxy.listen, "Proxy")
            upstream = field_str(obj, "upstream", proxy.upstream, "Proxy")
            enabled = field_bool(obj, "enabled", proxy.enabled, "Proxy")
        except GoJSONError as exc:
            raise BAD_REQUEST_BODY.joined(str(exc)) from None
        async with self.registry.lock:
            await proxy.update(listen, upstream, enabled)
        return _json_body(proxy.to_json())

    async def proxy_delete(self, request: web.Request, v: dict[str, str]) -> web.Response:
        async with self.registry.lock:
            await self.registry.remove(v["proxy"])
        return _no_content()

    async def reset(self, request: web.Request, v: dict[str, str]) -> web.Response:
        async with self.registry.lock:
            await self.registry.reset()
        return _no_content()

    # -- toxics --------------------------------------------------------------------------------
    async def toxic_index(self, request: web.Request, v: dict[str, str]) -> web.Response:
        return _json_body(self.registry.get(v["proxy"]).toxics.to_json())

    async def toxic_create(self, request: web.Request, v: dict[str, str]) -> web.Response:
        proxy = self.registry.get(v["proxy"])
        body = await _read_json(request)
        async with self.registry.lock:
            toxic = proxy.add_toxic(proxy.toxics.parse_new(body))
        return _json_body(toxic.to_json())

    async def toxic_show(self, request: web.Request, v: dict[str, str]) -> web.Response:
        proxy = self.registry.get(v["proxy"])
        return _json_body(proxy.toxics.get(v["toxic"]).to_json())

    async def toxic_update(self, request: web.Request, v: dict[str, str]) -> web.Response:
        proxy = self.registry.get(v["proxy"])
        proxy.toxics.get(v["toxic"])
        body = await _read_json(request)
        async with self.registry.lock:
            toxic = proxy.update_toxic(v["toxic"], body)
        return _json_body(toxic.to_json())

    async def toxic_delete(self, request: web.Request, v: dict[str, str]) -> web.Response:
        proxy = self.registry.get(v["proxy"])
        async with self.registry.lock:
            proxy.remove_toxic(v["toxic"])
        return _no_content()

    # -- misc ----------------------------------------------------------------------------------
    async def version(self, request: web.Request, v: dict[str, str]) -> web.Response:
        return web.Response(body=f'{{"version": "{TOXIPROXY_VERSION}"}}\n'.encode(),
                            headers={"Content-Type": "application/json;charset=utf-8"})

    async def metrics(self, request: web.Request, v: dict[str, str]) -> web.Response:
        resp = web.Response(body=render_proxy_metrics(self.registry.proxies.values()).encode())
        resp.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
        return resp

    # -- extensions ----------------------------------------------------------------------------
    async def events(self, request: web.Request, v: dict[str, str]) -> web.Response:
        proxy = v.get("proxy")
        if proxy is not None:
            self.registry.get(proxy)
        since_text = request.query.get("since", "0")
        if not since_text.isdigit():
            raise BAD_REQUEST_BODY.joined(f"since must be a non-negative integer, got "
                                          f"{since_text!r}")
        log_ = self.registry.ctx.events
        events = log_.since(int(since_text), proxy)
        return _json_body({"events": events, "oldest_seq": log_.oldest_seq,
                           "seed": self.registry.ctx.random.seed})

    async def connections(self, request: web.Request, v: dict[str, str]) -> web.Response:
        proxy = self.registry.get(v["proxy"])
        return _json_body([c.stats() for c in proxy.connections.values() if c.started])


_SEG = "(?P<{}>[^/]+)"
ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (re.compile(r"^/reset$"), {"POST": ApiHandlers.reset}),
    (re.compile(r"^/proxies$"), {"GET": ApiHandlers.proxy_index,
                                 "POST": ApiHandlers.proxy_create}),
    (re.compile(r"^/populate$"), {"POST": ApiHandlers.populate}),
    (re.compile(rf"^/proxies/{_SEG.format('proxy')}$"), {
        "GET": ApiHandlers.proxy_show, "POST": ApiHandlers.proxy_update,
        "PATCH": ApiHandlers.proxy_update, "DELETE": ApiHandlers.proxy_delete}),
    (re.compile(rf"^/proxies/{_SEG.format('proxy')}/toxics$"), {
        "GET": ApiHandlers.toxic_index, "POST": ApiHandlers.toxic_create}),
    (re.compile(rf"^/proxies/{_SEG.format('proxy')}/toxics/{_SEG.format('toxic')}$"), {
        "GET": ApiHandlers.toxic_show, "POST": ApiHandlers.toxic_update,
        "PATCH": ApiHandlers.toxic_update, "DELETE": ApiHandlers.toxic_delete}),
    (re.compile(r"^/version$"), {"GET": ApiHandlers.version}),
    # extensions
    (re.compile(r"^/events$"), {"GET": ApiHandlers.events}),
    (re.compile(rf"^/proxies/{_SEG.format('proxy')}/events$"), {"GET": ApiHandlers.events}),
    (re.compile(rf"^/proxies/{_SEG.format('proxy')}/connections$"),
     {"GET": ApiHandlers.connections}),
]
METRICS_ROUTE = (re.compile(r"^/metrics$"), {"GET": ApiHandlers.metrics})


def build_app(registry: ProxyRegistry, *, proxy_metrics: bool = False) -> web.Application:
    handlers = ApiHandlers(registry, proxy_metrics=proxy_metrics)
    routes = [*ROUTES, METRICS_ROUTE] if proxy_metrics else ROUTES
    ids = RequestIds()

    async def dispatch(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = ids.next()
        response = await _route(handlers, routes, request)
        response.headers[REQUEST_ID_HEADER] = request_id
        response.headers["Server"] = SERVER_HEADER
        log.info("%s %s -> %d (%.1f ms) request_id=%s", request.method, request.path_qs,
                 response.status, (time.perf_counter() - started) * 1000, request_id)
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


async def _route(handlers: ApiHandlers, routes: list[tuple[re.Pattern[str], dict[str, Handler]]],
                 request: web.Request) -> web.Response:
    path_matched = False
    for pattern, methods in routes:
        match = pattern.match(request.path)
        if match is None:
            continue
        path_matched = True
        handler = methods.get(request.method)
        if handler is None:
            continue
        if request.headers.get("User-Agent", "").startswith("Mozilla/"):
            return _text("User agent not allowed\n", 403)
        try:
            return await handler(handlers, request, match.groupdict())
        except ApiError as exc:
            return error_response(exc)
        except Exception as exc:  # Toxiproxy answers unexpected errors with 500 too
            log.exception("%s %s failed", request.method, request.path)
            return error_response(ApiError(f"{type(exc).__name__}: {exc}", 500))
    if path_matched:
        return web.Response(status=405)
    return _text("404 page not found\n", 404)
