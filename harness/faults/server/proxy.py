"""One named proxy: a listener, its live connections and its toxics (Toxiproxy's Proxy).

`enabled: false` closes the listener (new connections are refused) and every live connection;
enabling again binds the same resolved address. Changing `listen` or `upstream` restarts the
proxy; `listen` is compared after resolving it (Toxiproxy 2.12), so another name for the bound
address changes nothing. Toxic changes are applied to every live connection, not only to new ones.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from typing import Any

from harness.faults.server.addresses import (
    AddressError,
    bind_listener,
    format_address,
    resolve_tcp_addr,
)
from harness.faults.server.api_errors import internal
from harness.faults.server.connection import Connection, Side
from harness.faults.server.events import EventLog
from harness.faults.server.randomness import RandomSource
from harness.faults.server.toxic_set import DIRECTIONS, ChainChange, ToxicDef, ToxicSet

log = logging.getLogger("harness.faults.server")

CLOSE_WAIT_SECONDS = 5.0


@dataclasses.dataclass
class ServerContext:
    """What every proxy shares: the event log and the random source."""

    events: EventLog
    random: RandomSource


class FaultProxy:
    def __init__(self, ctx: ServerContext, name: str, listen: str, upstream: str) -> None:
        self.ctx = ctx
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics = ToxicSet()
        self.connections: dict[int, Connection] = {}
        self._server: asyncio.AbstractServer | None = None
        self._ids = itertools.count(1)
        self._idle = asyncio.Event()
        self._idle.set()
        # bytes of connections already closed, per direction: [received, sent] (for /metrics)
        self.closed_bytes: dict[str, list[int]] = {d: [0, 0] for d in DIRECTIONS}

    # -- listener ------------------------------------------------------------------------------
    async def start(self, announce: bool = True) -> None:
        """Bind and accept; raises ApiError(500) with Go's bind error text on failure.

        `announce=False` when the caller logs the start itself (creation emits one
        `proxy_created` event carrying `enabled` and the resolved listen address)."""
        if self.enabled:
            return
        try:
            sock = await bind_listener(self.listen)
        except AddressError as exc:
            raise internal(str(exc)) from None
        self.listen = format_address(sock.getsockname())
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(lambda: Side("client", accepted_by=self),
                                                    sock=sock)
        except OSError as exc:
            sock.close()
            raise internal(f"listen tcp {self.listen}: {exc}") from None
        self.enabled = True
        if announce:
            self.ctx.events.emit("proxy_enabled", self.name, listen=self.listen,
                                 upstream=self.upstream)

    async def stop(self, reason: str = "proxy disabled") -> None:
        """Close the listener and every connection; returns when they are all gone."""
        if not self.enabled:
            return
        self.enabled = False
        server, self._server = self._server, None
        if server is not None:
            server.close()  # the listening socket is closed now: new connects are refused
        for conn in list(self.connections.values()):
            conn.abort(reason)
        await self.wait_idle()
        if server is not None:
            try:
                await asyncio.wait_for(server.wait_closed(), CLOSE_WAIT_SECONDS)
            except TimeoutError:
                log.warning("proxy %s: listener did not report closed in time", self.name)
        self.ctx.events.emit("proxy_disabled", self.name, listen=self.listen, reason=reason)

    async def wait_idle(self) -> None:
        try:
            await asyncio.wait_for(self._idle.wait(), CLOSE_WAIT_SECONDS)
        except TimeoutError:
            log.warning("proxy %s: %d connection(s) still closing", self.name,
                        len(self.connections))

    async def differs(self, listen: str, upstream: str) -> bool:
        """Toxiproxy 2.12's Proxy.Differs: `listen` is resolved before it is compared with the
        bound address, so `localhost:P` for a proxy on 127.0.0.1:P is no change. An address
        that does not resolve raises ApiError(500) with Go's resolver text."""
        try:
            resolved = await resolve_tcp_addr(listen)
        except AddressError as exc:
            raise internal(str(exc)) from None
        return resolved != self.listen or upstream != self.upstream

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """Toxiproxy's Proxy.Update: restart on a new address, then apply `enabled`.

        Refused before anything changes when `listen` does not resolve; an address that
        resolves but cannot be bound leaves the proxy stopped on the new address (Toxiproxy
        has stopped it before start() fails, and answers 500 with the bind error)."""
        if await self.differs(listen, upstream):
            await self.stop("proxy restarted")
            self.listen, self.upstream = listen, upstream
        if enabled != self.enabled:
            if enabled:
                await self.start()
            else:
                await self.stop()

    # -- connections ---------------------------------------------------------------------------
    def accept(self, client: Side) -> None:
        conn = Connection(self, next(self._ids), client)
        if not self.enabled:  # accepted just as the listener closed
            client.conn = None
            client.transport.abort()  # type: ignore[union-attr]
            return
        self.connections[conn.id] = conn
        self._idle.clear()
        # Toxiproxy dials before its links read the client: what the client sends meanwhile
        # stays in TCP buffers (flow control), not in our memory. Resumed by Connection._start.
        client.transport.pause_reading()  # type: ignore[union-attr]
        conn.start_dial()

    def connection_closed(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        if not self.connections:
            self._idle.set()
        stats = {}
        for direction, link in conn.links.items():
            self.closed_bytes[direction][0] += link.src.received
            self.closed_bytes[direction][1] += link.sent
            stats[direction] = {"received": link.src.received, "sent": link.sent,
                                "dropped": link.dropped_bytes + link.discarded}
        if conn.started:
            self.ctx.events.emit(
                "connection_closed", self.name, connection=conn.id, client=conn.client.peer,
                reason=conn.reason or "closed", reset_by=conn.reset_by, bytes=stats,
                duration=round(time.monotonic() - conn.opened_monotonic, 6))

    def bytes_totals(self) -> dict[str, tuple[int, int]]:
        """(received, sent) per direction since the proxy was created, live connections too."""
        totals = {d: tuple(v) for d, v in self.closed_bytes.items()}
        for conn in self.connections.values():
            for direction, link in conn.links.items():
                r, s = totals[direction]
                totals[direction] = (r + link.src.received, s + link.sent)
        return totals  # type: ignore[return-value]

    # -- toxics --------------------------------------------------------------------------------
    def add_toxic(self, toxic: ToxicDef) -> ToxicDef:
        change = self.toxics.add(toxic)
        self._rechain(toxic.direction, change, [])
        self.ctx.events.emit("toxic_added", self.name, toxic=toxic.to_json(),
                             active_on=self._active_on(toxic))
        return toxic

    def update_toxic(self, name: str, body: Any) -> ToxicDef:
        toxic, change = self.toxics.update(name, body)
        self._rechain(toxic.direction, change, [])
        self.ctx.events.emit("toxic_updated", self.name, toxic=toxic.to_json(),
                             active_on=self._active_on(toxic))
        return toxic

    def remove_toxic(self, name: str) -> None:
        toxic, change = self.toxics.remove(name)
        self._rechain(toxic.direction, change, [toxic])
        self.ctx.events.emit("toxic_removed", self.name, toxic=toxic.to_json())

    def reset_toxics(self) -> None:
        removed = {d: list(chain) for d, chain in self.toxics.chains.items()}
        if not any(removed.values()):
            return
        self.toxics.clear()
        for direction in DIRECTIONS:
            if removed[direction]:
                self._rechain(direction, ChainChange("reset"), removed[direction])
        for toxic in (*removed["upstream"], *removed["downstream"]):
            self.ctx.events.emit("toxic_removed", self.name, toxic=toxic.to_json(),
                                 reason="reset")

    def _rechain(self, direction: str, change: ChainChange, removed: list[ToxicDef]) -> None:
        chain = self.toxics.chains[direction]  # type: ignore[index]
        for conn in list(self.connections.values()):
            conn.rechain(direction, chain, change, removed)  # type: ignore[arg-type]

    def _active_on(self, toxic: ToxicDef) -> list[int]:
        return [conn.id for conn in self.connections.values()
                if (link := conn.links.get(toxic.direction)) and link.active.get(toxic.name)]

    # -- JSON ----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "listen": self.listen, "upstream": self.upstream,
                "enabled": self.enabled, "toxics": self.toxics.to_json()}
