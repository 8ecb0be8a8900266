"""Each toxic's effect, measured on real TCP through our proxy to a local echo server.

Timing checks are behaviour checks with generous upper bounds (shared 2-core machines):
"latency adds at least X", "bandwidth within ±20%", never performance thresholds.
"""

from __future__ import annotations

import asyncio
import os
import random
import time

import pytest
from fault_testkit import Recorder, TcpServer, connect, round_trip

from harness.faults.client import AsyncToxiproxyClient
from harness.faults.server import FaultProxyServer
from harness.faults.server.randomness import RandomSource
from harness.faults.toxics.latency import LatencyToxic
from harness.faults.toxics.slicer import SlicerToxic
from harness.faults.toxics.stub import Stub

pytestmark = pytest.mark.timeout(30)


async def proxied(api: AsyncToxiproxyClient, upstream: TcpServer, name: str = "p") -> Recorder:
    proxy = await api.create_proxy(name, upstream.address)
    return await connect(proxy.listen)


async def test_latency_adds_at_least_the_delay(api: AsyncToxiproxyClient,
                                               echo: TcpServer) -> None:
    rec = await proxied(api, echo)
    base = min([await round_trip(rec, b"x" * 100) for _ in range(3)])
    await api.add_toxic("p", "latency", attributes={"latency": 120})  # existing connection
    slow = [await round_trip(rec, b"y" * 100) for _ in range(3)]
    assert all(0.120 <= t < 0.120 + base + 0.5 for t in slow), slow
    await api.add_toxic("p", "latency", stream="upstream", name="up",
                        attributes={"latency": 60, "jitter": 20})
    both = [await round_trip(rec, b"z" * 100) for _ in range(5)]
    assert all(0.120 + 0.040 <= t < 0.120 + 0.080 + 0.5 for t in both), both
    await api.remove_toxic("p", "latency_downstream")
    await api.remove_toxic("p", "up")
    fast = await round_trip(rec, b"w" * 100)
    assert fast < 0.1
    rec.transport.close()


async def test_latency_applies_to_new_connections(api: AsyncToxiproxyClient,
                                                  echo: TcpServer) -> None:
    proxy = await api.create_proxy("p", echo.address)
    await api.add_toxic("p", "latency", stream="upstream", attributes={"latency": 80})
    rec = await connect(proxy.listen)
    assert await round_trip(rec, b"abc") >= 0.080
    rec.transport.close()


async def test_bandwidth_paces_to_the_rate(api: AsyncToxiproxyClient, echo: TcpServer) -> None:
    rec = await proxied(api, echo)
    await api.add_toxic("p", "bandwidth", attributes={"rate": 500})  # KB/s downstream
    payload = os.urandom(400_000)
    started = time.monotonic()
    rec.transport.write(payload)
    done = await rec.wait_for_bytes(len(payload), within=10)
    rate = len(payload) / (done - started) / 1000
    assert 400 <= rate <= 600, f"{rate:.0f} KB/s through a 500 KB/s toxic"
    assert bytes(rec.data) == payload
    rec.transport.close()


async def test_bandwidth_zero_stalls_until_removed(api: AsyncToxiproxyClient,
                                                   echo: TcpServer) -> None:
    rec = await proxied(api, echo)
    await api.add_toxic("p", "bandwidth", name="stall", attributes={"rate": 0})
    payload = os.urandom(50_000)
    rec.transport.write(payload)
    await asyncio.sleep(0.3)
    assert len(rec.data) == 0
    await api.remove_toxic("p", "stall")
    await rec.wait_for_bytes(len(payload))
    assert bytes(rec.data) == payload


async def test_timeout_zero_is_a_black_hole_closed_on_removal(api: AsyncToxiproxyClient,
                                                              echo: TcpServer) -> None:
    rec = await proxied(api, echo)
    await round_trip(rec, b"before")
    await api.add_toxic("p", "timeout", name="hole", attributes={"timeout": 0})
    rec.transport.write(b"into the void")
    await asyncio.sleep(0.4)
    assert bytes(rec.data) == b"before" and not rec.lost.done()
    await api.remove_toxic("p", "hole")
    await rec.wait_closed(within=3)
    assert bytes(rec.data) == b"before"


async def test_timeout_closes_after_silence(api: AsyncToxiproxyClient, echo: TcpServer) -> None:
    rec = await proxied(api, echo)
    await api.add_toxic("p", "timeout", stream="upstream", attributes={"timeout": 250})
    started = time.monotonic()
    rec.transport.write(b"dropped")
    await rec.wait_closed(within=3)
    assert time.monotonic() - started >= 0.250
    assert bytes(rec.data) == b""


async def test_reset_peer_gives_connection_reset(api: AsyncToxiproxyClient,
                                                 echo: TcpServer) -> None:
    proxy = await api.create_proxy("p", echo.address)
    await api.add_toxic("p", "reset_peer", stream="upstream", attributes={"timeout": 0})
    host, _, port = proxy.listen.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"boom")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(10), 3)
    writer.close()


async def test_reset_peer_waits_its_timeout(api: AsyncToxiproxyClient, echo: TcpServer) -> None:
    rec = await proxied(api, echo)
    await api.add_toxic("p", "reset_peer", stream="upstream", attributes={"timeout": 200})
    started = time.monotonic()
    rec.transport.write(b"boom")
    exc = await rec.wait_closed(within=3)
    assert isinstance(exc, ConnectionResetError)
    assert time.monotonic() - started >= 0.200


async def test_limit_data_closes_after_n_bytes(api: AsyncToxiproxyClient,
                                               echo: TcpServer) -> None:
    rec = await proxied(api, echo)
    await api.add_toxic("p", "limit_data", attributes={"bytes": 1000})
    payload = os.urandom(5000)
    rec.transport.write(payload)
    await rec.wait_closed(within=3)
    assert bytes(rec.data) == payload[:1000]


async def test_limit_data_counts_across_writes(api: AsyncToxiproxyClient,
                                               echo: TcpServer) -> None:
    rec = await proxied(api, echo)
    await api.add_toxic("p", "limit_data", stream="upstream", attributes={"bytes": 250})
    await round_trip(rec, b"a" * 100)
    await round_trip(rec, b"b" * 100)
    rec.transport.write(b"c" * 100)
    await rec.wait_closed(within=3)
    # the server got exactly 250 bytes; then the proxy closed the connection (both sockets,
    # as Toxiproxy does), so the echo of the last 50 never comes back
    assert bytes(echo.received[0]) == b"a" * 100 + b"b" * 100 + b"c" * 50
    assert bytes(rec.data) == b"a" * 100 + b"b" * 100


async def test_slicer_splits_writes(api: AsyncToxiproxyClient, echo: TcpServer) -> None:
    rec = await proxied(api, echo)
    payload = os.urandom(4000)
    await round_trip(rec, payload)
    unsliced_reads = len(rec.reads)
    rec.reads.clear()
    await api.add_toxic("p", "slicer", attributes={"average_size": 100, "size_variation": 20,
                                                   "delay": 2000})
    await round_trip(rec, payload)
    sizes = [size for _, size in rec.reads]
    assert unsliced_reads <= 3
    assert len(sizes) >= 15, sizes
    assert max(sizes) <= 4 * 120, sizes  # reads may coalesce a few slices, never the whole


def test_slicer_slice_sizes_follow_average_and_variation() -> None:
    toxic = SlicerToxic(average_size=100, size_variation=20, delay=0)
    rng = random.Random(1)
    for total in (1, 99, 100, 121, 4000, 65536):
        sizes = toxic.slice_sizes(total, rng)
        assert sum(sizes) == total
        assert all(0 < s for s in sizes)
        if total > 120:
            assert max(sizes) <= 120 and min(sizes) >= 40, (total, sizes)
    assert SlicerToxic(average_size=0).slice_sizes(5, rng) == [1, 1, 1, 1, 1]


async def test_slow_close_delays_the_close(api: AsyncToxiproxyClient,
                                           greeter: TcpServer) -> None:
    proxy = await api.create_proxy("p", greeter.address)
    rec = await connect(proxy.listen)
    started = time.monotonic()
    await rec.wait_closed()
    fast = time.monotonic() - started
    await api.add_toxic("p", "slow_close", attributes={"delay": 300})
    rec = await connect(proxy.listen)
    started = time.monotonic()
    await rec.wait_for_bytes(5)
    assert bytes(rec.data) == b"hello"
    await rec.wait_closed()
    assert fast < 0.2
    assert time.monotonic() - started >= 0.300


async def test_toxicity_zero_and_one(api: AsyncToxiproxyClient, echo: TcpServer) -> None:
    rec = await proxied(api, echo)
    await api.add_toxic("p", "latency", name="never", toxicity=0,
                        attributes={"latency": 400})
    assert await round_trip(rec, b"q") < 0.2
    await api.update_toxic("p", "never", toxicity=1)  # updating re-rolls it
    assert await round_trip(rec, b"q") >= 0.400


async def rolls(seed: int, echo: TcpServer, n: int = 16) -> list[bool]:
    """Which of `n` connections a toxicity-0.5 toxic was rolled in for, on a fresh server."""
    server = FaultProxyServer(seed=seed)
    await server.start("127.0.0.1", 0)
    try:
        async with AsyncToxiproxyClient(server.url) as api:
            proxy = await api.create_proxy("s", echo.address)
            await api.add_toxic("s", "latency", toxicity=0.5, attributes={"latency": 1})
            for _ in range(n):
                rec = await connect(proxy.listen)
                await round_trip(rec, b".")
                rec.transport.close()
            events = await api.events("s")
        return [e.data["toxics"]["downstream"]["latency_downstream"]
                for e in events if e.type == "connection_opened"]
    finally:
        await server.close()


async def test_same_seed_same_rolls(echo: TcpServer) -> None:
    first, again, other = await rolls(7, echo), await rolls(7, echo), await rolls(8, echo)
    assert len(first) == 16
    assert first == again
    assert first != other
    assert 0 < sum(first) < 16  # toxicity 0.5 really is a coin


def test_same_seed_same_jitter() -> None:
    def delays(seed: int) -> list[int]:
        rng = RandomSource(seed).derive("proxy", 1, "downstream", "toxic", "lat")
        stub = Stub(toxic_name="lat", owner=None, emit=lambda item: None, rng=rng)  # type: ignore[arg-type]
        toxic = LatencyToxic(latency=100, jitter=50)
        return [toxic.delay_ms(stub) for _ in range(50)]

    assert delays(3) == delays(3)
    assert delays(3) != delays(4)
    assert all(50 <= d < 150 for d in delays(3))


async def test_chain_changes_never_lose_or_reorder_bytes(api: AsyncToxiproxyClient,
                                                         echo: TcpServer) -> None:
    """Bytes stream both ways while toxics come and go: every byte arrives, in order."""
    rec = await proxied(api, echo)
    payload = b"".join(i.to_bytes(4, "big") * 16 for i in range(30_000))  # 1.92 MB
    sent = 0

    async def writer() -> None:
        nonlocal sent
        for start in range(0, len(payload), 7_919):
            rec.transport.write(payload[start:start + 7_919])
            sent += 7_919
            await asyncio.sleep(0.0005)

    writing = asyncio.create_task(writer())
    changes = [
        ("add", "latency", "downstream", {"latency": 5, "jitter": 3}),
        ("add", "slicer", "upstream", {"average_size": 500, "size_variation": 100}),
        ("add", "bandwidth", "downstream", {"rate": 4000}),
        ("update", "latency", None, {"latency": 1}),
        ("remove", "slicer", None, None),
        ("add", "noop", "upstream", {}),
        ("remove", "latency", None, None),
        ("add", "latency", "upstream", {"latency": 2}),
        ("remove", "bandwidth", None, None),
        ("reset", None, None, None),
    ]
    names: dict[str, str] = {}
    for op, type_, stream, attributes in changes:
        await asyncio.sleep(0.05)
        if op == "add":
            toxic = await api.add_toxic("p", type_, stream=stream, name=f"{type_}{len(names)}",
                                        attributes=attributes)
            names[type_] = toxic.name
        elif op == "update":
            await api.update_toxic("p", names[type_], attributes=attributes)
        elif op == "remove":
            await api.remove_toxic("p", names.pop(type_))
        else:
            await api.reset()
    await writing
    await rec.wait_for_bytes(len(payload), within=20)
    assert len(rec.data) == len(payload)
    assert bytes(rec.data) == payload
    assert await api.toxics("p") == []
    rec.transport.close()


async def test_pending_bytes_flush_in_order_after_backpressure(api: AsyncToxiproxyClient,
                                                               echo: TcpServer) -> None:
    """A stalled chain fills past its high-water mark (source paused); removal flushes all."""
    rec = await proxied(api, echo)
    await api.add_toxic("p", "bandwidth", name="stall", stream="upstream",
                        attributes={"rate": 0})
    payload = os.urandom(3_000_000)
    rec.transport.write(payload)
    await asyncio.sleep(0.3)
    conns = await api.connections("p")
    assert conns[0]["upstream"]["in_flight"] >= 1 << 20  # held in the chain...
    assert conns[0]["upstream"]["received"] < len(payload)  # ...and the client paused
    await api.remove_toxic("p", "stall")
    await rec.wait_for_bytes(len(payload), within=20)
    assert bytes(rec.data) == payload
    rec.transport.close()
