"""Small TCP helpers for the fault proxy tests: upstream servers and a recording client."""

from __future__ import annotations

import asyncio
import os
import time


class EchoProtocol(asyncio.Protocol):
    """Echoes everything; closes when the client sends EOF."""

    def __init__(self, registry: list[asyncio.Transport], received: list[bytearray]) -> None:
        self.registry = registry
        self.received = bytearray()
        received.append(self.received)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.registry.append(transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self.received += data
        self.transport.write(data)  # type: ignore[attr-defined]

    def eof_received(self) -> bool:
        return False


class GreetAndCloseProtocol(asyncio.Protocol):
    """Sends `greeting`, then closes (FIN) at once: for close-propagation tests."""

    greeting = b"hello"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.greeting)  # type: ignore[attr-defined]
        transport.close()


class TcpServer:
    def __init__(self, server: asyncio.AbstractServer, transports: list[asyncio.Transport],
                 received: list[bytearray] | None = None) -> None:
        self.server = server
        self.transports = transports
        self.received = received if received is not None else []  # per connection
        sockname = server.sockets[0].getsockname()
        self.host, self.port = sockname[0], sockname[1]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def close(self) -> None:
        self.server.close()
        for transport in self.transports:
            transport.abort()
        await self.server.wait_closed()


async def start_echo() -> TcpServer:
    transports: list[asyncio.Transport] = []
    received: list[bytearray] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: EchoProtocol(transports, received),
                                      "127.0.0.1", 0)
    return TcpServer(server, transports, received)


async def start_greeter() -> TcpServer:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(GreetAndCloseProtocol, "127.0.0.1", 0)
    return TcpServer(server, [])


class Recorder(asyncio.Protocol):
    """A client that records every read (size and time), EOF and connection loss."""

    def __init__(self) -> None:
        self.reads: list[tuple[float, int]] = []  # (monotonic time, size) of each read
        self.data = bytearray()
        self.last_read_at = 0.0
        self.eof_at: float | None = None
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        self.changed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.last_read_at = time.monotonic()
        self.reads.append((self.last_read_at, len(data)))
        self.data += data
        self.changed.set()

    def eof_received(self) -> bool:
        self.eof_at = time.monotonic()
        self.changed.set()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.eof_at is None and exc is None:
            self.eof_at = time.monotonic()
        if not self.lost.done():
            self.lost.set_result(exc)
        self.changed.set()

    async def wait_for_bytes(self, n: int, within: float = 5.0) -> float:
        """Monotonic time of the read that completed `n` bytes in total."""
        async with asyncio.timeout(within):
            while len(self.data) < n:
                self.changed.clear()
                if self.lost.done():
                    raise AssertionError(f"connection closed after {len(self.data)}/{n} bytes")
                await self.changed.wait()
        return self.last_read_at

    async def wait_closed(self, within: float = 5.0) -> Exception | None:
        return await asyncio.wait_for(asyncio.shield(self.lost), within)


async def connect(address: str) -> Recorder:
    host, _, port = address.rpartition(":")
    loop = asyncio.get_running_loop()
    _transport, recorder = await loop.create_connection(Recorder, host.strip("[]"), int(port))
    return recorder


async def round_trip(rec: Recorder, payload: bytes, within: float = 5.0) -> float:
    """Seconds from writing `payload` to having it echoed back in full."""
    start_len = len(rec.data)
    started = time.monotonic()
    rec.transport.write(payload)
    done = await rec.wait_for_bytes(start_len + len(payload), within)
    assert bytes(rec.data[start_len:start_len + len(payload)]) == payload
    return done - started


def open_fds() -> set[str]:
    """File descriptors of this process (Linux)."""
    return set(os.listdir("/proc/self/fd"))
