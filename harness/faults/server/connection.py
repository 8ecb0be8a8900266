"""A proxied connection: the client's socket, the upstream socket, and a link each way.

Lifecycle, as in Toxiproxy: the client is accepted first and the upstream dialled afterwards
(if that fails the client is closed); the client socket is not read until the upstream answers,
so bytes it sends meanwhile wait in TCP buffers (the client is flow-controlled, our memory is
not involved) and are forwarded in order afterwards. When one side sends EOF or goes away, the
link reading from it passes the close on after the bytes still in flight; closing that
destination ends the other link the same way. `abort()` (proxy disabled/deleted/restarted,
server stopping) closes both sockets at once; `schedule_reset()` (reset_peer toxic) does it
with TCP RST.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import struct
import time
from typing import TYPE_CHECKING, Any

from harness.faults.server.addresses import AddressError, format_address, split_host_port
from harness.faults.server.link import PAUSE_DST, Link
from harness.faults.server.toxic_set import ChainChange, Direction, ToxicDef

if TYPE_CHECKING:
    from harness.faults.server.proxy import FaultProxy

WRITE_HIGH_WATER = 512 << 10
WRITE_LOW_WATER = 128 << 10
_LINGER_ZERO = struct.pack("ii", 1, 0)


class Side(asyncio.Protocol):
    """One socket of a connection. `sink` is where its incoming bytes go (set by the links)."""

    def __init__(self, role: str, conn: Connection | None = None,
                 accepted_by: FaultProxy | None = None) -> None:
        self.role = role  # "client" | "upstream"
        self.conn = conn
        self._accepted_by = accepted_by
        self.transport: asyncio.Transport | None = None
        self.received = 0
        self._early: list[bytes] = []
        self.sink = self._early.append  # until the links exist
        self.reader_link: Link | None = None  # the link that reads from this socket
        self.writer_link: Link | None = None  # the link that writes to it
        self.eof = False
        self.lost = False
        self.peer = ""

    # -- asyncio.Protocol ----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(WRITE_HIGH_WATER, WRITE_LOW_WATER)  # type: ignore[attr-defined]
        peer = transport.get_extra_info("peername")
        self.peer = format_address(peer) if peer else "?"
        if self._accepted_by is not None:
            self._accepted_by.accept(self)
            self._accepted_by = None

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        self.sink(data)

    def eof_received(self) -> bool:
        self.eof = True
        if self.conn is not None:
            self.conn.side_eof(self)
        return True  # keep it open for writing: the other direction may still deliver

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self.conn is not None:
            self.conn.side_lost(self, exc)

    def pause_writing(self) -> None:
        if self.writer_link is not None:
            self.writer_link.pause_source(PAUSE_DST)

    def resume_writing(self) -> None:
        if self.writer_link is not None:
            self.writer_link.resume_source(PAUSE_DST)

    def take_early(self) -> list[bytes]:
        early, self._early = self._early, []
        return early


def linger_zero(transport: asyncio.BaseTransport | None) -> None:
    """Make the next close of this socket send RST instead of FIN."""
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)


class Connection:
    def __init__(self, proxy: FaultProxy, conn_id: int, client: Side) -> None:
        self.proxy = proxy
        self.id = conn_id
        self.client = client
        self.upstream: Side | None = None
        self.links: dict[Direction, Link] = {}
        self.started = False
        self.finalized = False
        self.aborting = False
        self.reason: str | None = None
        self.reset_by: str | None = None
        self._reset_timer: asyncio.TimerHandle | None = None
        self._dial: asyncio.Task[None] | None = None
        self.opened_monotonic = time.monotonic()
        self.opened_wall = time.time()
        client.conn = self

    @property
    def label(self) -> str:
        return f"{self.proxy.name}#{self.id}"

    def note_reason(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    # -- dialling ------------------------------------------------------------------------------
    def start_dial(self) -> None:
        self._dial = asyncio.get_running_loop().create_task(self._dial_upstream())

    async def _dial_upstream(self) -> None:
        upstream = Side("upstream", self)
        try:
            host, port = split_host_port(self.proxy.upstream, "dial")
            loop = asyncio.get_running_loop()
            try:
                await loop.create_connection(lambda: upstream, host or None, port)
            except socket.gaierror:
                raise AddressError(f"dial tcp: lookup {host}: no such host") from None
            except OSError as exc:
                why = os.strerror(exc.errno).lower() if exc.errno else str(exc)
                if exc.errno == errno.ECONNREFUSED:
                    why = "connection refused"
                raise AddressError(f"dial tcp {host}:{port}: connect: {why}") from None
        except AddressError as exc:
            self.proxy.ctx.events.emit("upstream_unreachable", self.proxy.name, connection=self.id,
                                       client=self.client.peer, upstream=self.proxy.upstream,
                                       error=str(exc))
            self.note_reason(f"upstream unreachable: {exc}")
            if self.client.transport is not None and not self.client.lost:
                self.client.transport.abort()
            self._maybe_finalize()
            return
        except asyncio.CancelledError:
            if upstream.transport is not None:
                upstream.transport.abort()
            if self.client.transport is not None and not self.client.lost:
                self.client.transport.abort()
            self._maybe_finalize()
            raise
        finally:
            self._dial = None
        self.upstream = upstream
        if self.client.lost or self.aborting:
            upstream.transport.abort()  # type: ignore[union-attr]
            return
        self._start(upstream)

    def _start(self, upstream: Side) -> None:
        client = self.client
        rng = self.proxy.ctx.random
        name = self.proxy.name
        up = Link(self, "upstream", client, upstream,
                  lambda *n: rng.derive(name, self.id, "upstream", *n))
        down = Link(self, "downstream", upstream, client,
                    lambda *n: rng.derive(name, self.id, "downstream", *n))
        self.links = {"upstream": up, "downstream": down}
        client.reader_link, client.writer_link = up, down
        upstream.reader_link, upstream.writer_link = down, up
        chains = self.proxy.toxics.chains
        up.attach(chains["upstream"])
        down.attach(chains["downstream"])
        self.started = True
        self.proxy.ctx.events.emit(
            "connection_opened", name, connection=self.id, client=client.peer,
            upstream=upstream.peer, toxics={d: link.stats()["toxics"]
                                            for d, link in self.links.items()})
        for side in (client, upstream):  # e.g. a greeting that arrived before we got here
            for data in side.take_early():
                side.sink(data)
        if client.transport is not None and not client.lost:
            client.transport.resume_reading()  # paused since accept (FaultProxy.accept)
        for side in (client, upstream):
            if side.lost:
                self.side_lost(side, None)
            elif side.eof:
                self.side_eof(side)

    # -- events from the sockets ---------------------------------------------------------------
    def side_eof(self, side: Side) -> None:
        if not self.started:
            return  # replayed by _start
        self.note_reason(f"{side.role} closed")
        side.reader_link.source_ended()  # type: ignore[union-attr]

    def side_lost(self, side: Side, exc: Exception | None) -> None:
        if not self.started:
            if side is self.client and self._dial is not None:
                self.note_reason("client closed")
                self._dial.cancel()
            elif side is self.client:
                self._maybe_finalize()
            return
        self.note_reason(f"{side.role} error: {exc}" if exc else f"{side.role} closed")
        side.writer_link.abandon()  # type: ignore[union-attr]
        side.reader_link.source_ended()  # type: ignore[union-attr]
        self._maybe_finalize()

    def _maybe_finalize(self) -> None:
        if self.finalized or not self.client.lost:
            return
        if self.upstream is not None and not self.upstream.lost:
            return
        if self._dial is not None:
            return
        self.finalized = True
        if self._reset_timer is not None:
            self._reset_timer.cancel()
        self.proxy.connection_closed(self)

    # -- actions -------------------------------------------------------------------------------
    def abort(self, reason: str, *, rst: bool = False, first: Side | None = None) -> None:
        """Close both sockets now, discarding anything in flight (RST if `rst`); `first` is
        closed before the other one."""
        if self.aborting:
            return
        self.aborting = True
        self.note_reason(reason)
        for link in self.links.values():
            link.abandon()
        if self._dial is not None:
            self._dial.cancel()
        sides = (self.client, self.upstream)
        if first is self.upstream:
            sides = (self.upstream, self.client)
        for side in sides:
            if side is not None and side.transport is not None and not side.lost:
                if rst:
                    linger_zero(side.transport)
                side.transport.abort()

    def schedule_reset(self, delay: float, toxic: str, first: Side) -> None:
        """RST both sockets after `delay`, `first` (the toxic's destination) first: Toxiproxy's
        reset_peer ends its link, which closes that link's destination; the paired link then
        closes the other socket, both with SO_LINGER 0."""
        if self._reset_timer is not None or self.aborting:
            return
        loop = asyncio.get_running_loop()
        self._reset_timer = loop.call_later(max(delay, 0.0), self._reset, toxic, first)

    def _reset(self, toxic: str, first: Side) -> None:
        self.reset_by = toxic
        self.proxy.ctx.events.emit("connection_reset", self.proxy.name, connection=self.id,
                                   client=self.client.peer, toxic=toxic)
        self.abort(f"reset by toxic {toxic}", rst=True, first=first)

    def rechain(self, direction: Direction, chain: list[ToxicDef], change: ChainChange,
                removed: list[ToxicDef]) -> None:
        link = self.links.get(direction)
        if link is not None:
            link.rechain(chain, change, removed)

    # -- reporting -----------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "client": self.client.peer,
            "upstream": self.upstream.peer if self.upstream else None,
            "opened": {"monotonic": self.opened_monotonic, "wall": self.opened_wall},
            **{direction: link.stats() for direction, link in self.links.items()},
        }
