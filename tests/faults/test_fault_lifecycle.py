"""Proxy and connection lifecycle on real TCP: listen, disable, re-enable, delete, closes."""

from __future__ import annotations

import asyncio

import pytest
from fault_testkit import TcpServer, connect, round_trip

from harness.faults.client import AsyncToxiproxyClient
from harness.infra.ports import free_port

pytestmark = pytest.mark.timeout(30)


async def refused(listen: str) -> bool:
    try:
        rec = await connect(listen)
    except ConnectionRefusedError:
        return True
    rec.transport.close()
    return False


async def events_of(api: AsyncToxiproxyClient, proxy: str, type_: str,
                    count: int = 1) -> list[dict]:
    async with asyncio.timeout(5):
        while True:
            found = [dict(e.data) for e in await api.events(proxy) if e.type == type_]
            if len(found) >= count:
                return found
            await asyncio.sleep(0.02)


async def test_disable_refuses_and_closes_then_reenable_rebinds(api: AsyncToxiproxyClient,
                                                                echo: TcpServer) -> None:
    proxy = await api.create_proxy("p", echo.address)
    live = [await connect(proxy.listen) for _ in range(3)]
    for rec in live:
        await round_trip(rec, b"ping")
    await api.add_toxic("p", "latency", attributes={"latency": 1})
    disabled = await api.disable_proxy("p")
    assert disabled.enabled is False and disabled.listen == proxy.listen
    for rec in live:  # every live connection is closed...
        await rec.wait_closed(within=3)
    assert await refused(proxy.listen)  # ...and new ones are refused
    assert [t.name for t in await api.toxics("p")] == ["latency_downstream"]  # toxics kept
    enabled = await api.enable_proxy("p")
    assert enabled.listen == proxy.listen
    rec = await connect(proxy.listen)
    assert await round_trip(rec, b"back") < 5
    rec.transport.close()
    closed = await events_of(api, "p", "connection_closed", 3)
    assert {c["reason"] for c in closed if c["connection"] <= 3} == {"proxy disabled"}


async def test_unreachable_upstream_accepts_then_closes(api: AsyncToxiproxyClient) -> None:
    proxy = await api.create_proxy("p", f"127.0.0.1:{free_port()}")
    rec = await connect(proxy.listen)  # accepted...
    await rec.wait_closed(within=3)  # ...then closed
    assert bytes(rec.data) == b""
    [event] = await events_of(api, "p", "upstream_unreachable")
    assert "connect: connection refused" in event["error"]
    assert await api.connections("p") == []


async def test_unresolvable_upstream_accepts_then_closes(api: AsyncToxiproxyClient) -> None:
    proxy = await api.create_proxy("p", "no-such-host.invalid:5432")
    rec = await connect(proxy.listen)
    await rec.wait_closed(within=10)
    [event] = await events_of(api, "p", "upstream_unreachable")
    assert event["error"] == "dial tcp: lookup no-such-host.invalid: no such host"


async def test_delete_closes_listener_and_connections(api: AsyncToxiproxyClient,
                                                      echo: TcpServer) -> None:
    proxy = await api.create_proxy("p", echo.address)
    rec = await connect(proxy.listen)
    await round_trip(rec, b"x")
    await api.delete_proxy("p")
    await rec.wait_closed(within=3)
    assert await refused(proxy.listen)


async def test_client_close_reaches_upstream(api: AsyncToxiproxyClient, echo: TcpServer) -> None:
    proxy = await api.create_proxy("p", echo.address)
    rec = await connect(proxy.listen)
    await round_trip(rec, b"hi")
    rec.transport.write_eof()  # the echo server closes on EOF; the proxy relays both ways
    await rec.wait_closed(within=3)
    [closed] = await events_of(api, "p", "connection_closed")
    assert closed["reason"] == "client closed"
    assert closed["bytes"]["upstream"]["sent"] == 2


async def test_upstream_close_reaches_client_after_its_data(api: AsyncToxiproxyClient,
                                                            greeter: TcpServer) -> None:
    proxy = await api.create_proxy("p", greeter.address)
    rec = await connect(proxy.listen)
    await rec.wait_closed(within=3)
    assert bytes(rec.data) == b"hello"


async def test_data_sent_before_upstream_answers_is_kept(api: AsyncToxiproxyClient,
                                                         echo: TcpServer) -> None:
    proxy = await api.create_proxy("p", echo.address)
    host, _, port = proxy.listen.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"early bytes")  # sent immediately, before the proxy dialled upstream
    assert await asyncio.wait_for(reader.readexactly(11), 3) == b"early bytes"
    writer.close()


async def test_toxics_added_while_connections_live(api: AsyncToxiproxyClient,
                                                   echo: TcpServer) -> None:
    proxy = await api.create_proxy("p", echo.address)
    recs = [await connect(proxy.listen) for _ in range(2)]
    for rec in recs:
        await round_trip(rec, b"a")
    toxic = await api.add_toxic("p", "latency", attributes={"latency": 100})
    events = await api.events("p")
    added = [e for e in events if e.type == "toxic_added"][-1]
    assert sorted(added.data["active_on"]) == [1, 2]
    assert toxic.attributes == {"latency": 100, "jitter": 0}
    for rec in recs:
        assert await round_trip(rec, b"b") >= 0.100
        rec.transport.close()


async def test_listen_on_a_fixed_port_and_restart_on_change(api: AsyncToxiproxyClient,
                                                            echo: TcpServer) -> None:
    port = free_port()
    proxy = await api.create_proxy("p", echo.address, listen=f"127.0.0.1:{port}")
    assert proxy.listen == f"127.0.0.1:{port}"
    rec = await connect(proxy.listen)
    await round_trip(rec, b"1")
    moved = await api.update_proxy("p", listen="127.0.0.1:0")
    assert moved.listen != proxy.listen
    await rec.wait_closed(within=3)  # restarting closes its connections
    assert await refused(proxy.listen)
    rec = await connect(moved.listen)
    await round_trip(rec, b"2")
    rec.transport.close()
