"""Details where our proxy must behave as Toxiproxy 2.12's Go server does, on real TCP.

Each test names the Toxiproxy source it follows (Shopify/toxiproxy: link.go, proxy.go, api.go,
toxics/reset_peer.go, proxy_test.go).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket

import httpx
import pytest
from fault_testkit import Recorder, TcpServer, connect, round_trip

from harness.faults.client import AsyncToxiproxyClient
from harness.faults.server import FaultProxyServer

pytestmark = pytest.mark.timeout(60)


# -- toxicity re-rolls on chain changes (link.go AddToxic / RemoveToxic / UpdateToxic) ----------
async def _active(api: AsyncToxiproxyClient, proxy: str, direction: str) -> dict[str, bool]:
    [conn] = await api.connections(proxy)
    return conn[direction]["toxics"]


async def test_chain_change_rerolls_the_preceding_toxic_only(api: AsyncToxiproxyClient,
                                                             echo: TcpServer) -> None:
    """Adding a toxic re-runs (re-rolls) the stub just before it; removing one re-rolls the stub
    that preceded it; nothing else is re-rolled. With toxicity 0.5 on both A and B and 40
    add/remove cycles of C after them, B is re-drawn 80 times (all 80 draws equal: 2^-79) and A
    never is. The server's seed is fixed, so the test is deterministic as well as sound."""
    proxy = await api.create_proxy("p", echo.address)
    rec = await connect(proxy.listen)
    await round_trip(rec, b"up")
    await api.add_toxic("p", "latency", name="A", toxicity=0.5, attributes={"latency": 0})
    await api.add_toxic("p", "latency", name="B", toxicity=0.5, attributes={"latency": 0})
    first = await _active(api, "p", "downstream")
    seen_a, seen_b = {first["A"]}, set()
    for _ in range(40):
        await api.add_toxic("p", "latency", name="C", attributes={"latency": 0})
        after_add = await _active(api, "p", "downstream")
        await api.remove_toxic("p", "C")
        after_remove = await _active(api, "p", "downstream")
        seen_a |= {after_add["A"], after_remove["A"]}
        seen_b |= {after_add["B"], after_remove["B"]}
        assert after_add["C"] is True  # toxicity 1 always applies
    assert seen_a == {first["A"]}, "A is not next to C: Toxiproxy never re-runs its stub"
    assert seen_b == {True, False}, "B precedes C: every add and remove of C re-rolls it"
    await round_trip(rec, b"still flowing")
    rec.transport.close()


async def test_chain_change_in_one_direction_leaves_the_other_alone(
        api: AsyncToxiproxyClient, echo: TcpServer) -> None:
    proxy = await api.create_proxy("p", echo.address)
    rec = await connect(proxy.listen)
    await round_trip(rec, b"up")
    await api.add_toxic("p", "latency", name="U", stream="upstream", toxicity=0.5,
                        attributes={"latency": 0})
    before = (await _active(api, "p", "upstream"))["U"]
    for _ in range(30):
        await api.add_toxic("p", "latency", name="D", attributes={"latency": 0})
        await api.remove_toxic("p", "D")
        assert (await _active(api, "p", "upstream"))["U"] == before
    rec.transport.close()


# -- proxy update (proxy.go Update + Differs, Toxiproxy 2.12; proxy_test.go) ---------------------
async def _update(fault_server_url: str, name: str, body: dict) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fault_server_url, timeout=10) as http:
        return await http.post(f"/proxies/{name}", json=body)


def _kinds(events: list) -> list[str]:
    return [e.type for e in events]


async def test_update_with_hostname_for_same_address_keeps_connections(
        api: AsyncToxiproxyClient, echo: TcpServer, fault_server: FaultProxyServer) -> None:
    """TestProxyUpdateWithHostname: `localhost:P` for a proxy bound to 127.0.0.1:P resolves to
    the same address, so the proxy is not restarted and live connections keep working."""
    proxy = await api.create_proxy("p", echo.address)
    port = proxy.listen.rpartition(":")[2]
    rec = await connect(proxy.listen)
    await round_trip(rec, b"before")
    response = await _update(fault_server.url, "p", {"listen": f"localhost:{port}",
                                                     "upstream": echo.address, "enabled": True})
    assert response.status_code == 200, response.text
    assert response.json()["listen"] == proxy.listen and response.json()["enabled"] is True
    await round_trip(rec, b"after")  # the same connection still works
    assert not rec.lost.done()
    assert "proxy_disabled" not in _kinds(await api.events("p"))
    rec.transport.close()


async def test_update_to_port_zero_still_restarts(api: AsyncToxiproxyClient,
                                                  echo: TcpServer) -> None:
    """TestProxyUpdate: `localhost:0` resolves to 127.0.0.1:0, which differs: a new port."""
    proxy = await api.create_proxy("p", echo.address)
    moved = await api.update_proxy("p", listen="localhost:0")
    assert moved.listen != proxy.listen and moved.listen.startswith("127.0.0.1:")
    rec = await connect(moved.listen)
    await round_trip(rec, b"moved")
    rec.transport.close()


@pytest.mark.parametrize(("listen", "error"), [
    ("no-such-host.invalid:5000", "lookup no-such-host.invalid: no such host"),
    ("127.0.0.1:99999", "address 99999: invalid port"),
    ("nohostport", "address nohostport: missing port in address"),
])
async def test_update_to_an_unresolvable_address_is_refused_first(
        api: AsyncToxiproxyClient, echo: TcpServer, fault_server: FaultProxyServer,
        listen: str, error: str) -> None:
    """Differs resolves the new listen address before anything is stopped: an error there is
    answered 500 (api.go's apiError for an error without a status) and the proxy keeps
    running on its old address with its live connections."""
    proxy = await api.create_proxy("p", echo.address)
    rec = await connect(proxy.listen)
    await round_trip(rec, b"before")
    response = await _update(fault_server.url, "p", {"listen": listen})
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert json.loads(response.text) == {"error": error, "status": 500}
    shown = await api.get_proxy("p")
    assert shown.listen == proxy.listen and shown.enabled is True
    await round_trip(rec, b"after")
    rec.transport.close()


async def test_update_to_a_taken_address_leaves_the_proxy_disabled(
        api: AsyncToxiproxyClient, echo: TcpServer, fault_server: FaultProxyServer) -> None:
    """An address that resolves but cannot be bound: Toxiproxy 2.12's Update has already
    stopped the proxy and set the new address when start() fails, so the answer is 500 with
    Go's bind error and the proxy stays disabled on the new address (we do the same)."""
    taken = await api.create_proxy("taken", echo.address)
    proxy = await api.create_proxy("p", echo.address)
    rec = await connect(proxy.listen)
    response = await _update(fault_server.url, "p", {"listen": taken.listen})
    assert response.status_code == 500
    assert json.loads(response.text) == {
        "error": f"listen tcp {taken.listen}: bind: address already in use", "status": 500}
    await rec.wait_closed(within=3)
    shown = await api.get_proxy("p")
    assert shown.listen == taken.listen and shown.enabled is False


# -- bytes sent while the upstream is dialled (proxy.go accept: Dial before the links read) ------
class SlowDialUpstream:
    """A listener whose accept queue is full (backlog 0 plus queued connections nobody
    accepts): a new connect hangs in SYN retries until `release()` accepts the queue."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        host, port = self.listener.getsockname()
        self.address = f"{host}:{port}"
        self.fillers: list[socket.socket] = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(self.listener.getsockname())
            self.fillers.append(filler)

    async def release(self) -> socket.socket:
        """Accept until the proxy's connection arrives (the fillers' come first); return it."""
        loop = asyncio.get_running_loop()
        self.listener.setblocking(False)
        fillers = set()
        for filler in self.fillers:
            with contextlib.suppress(OSError):
                fillers.add(filler.getsockname())
        while True:
            conn, peer = await loop.sock_accept(self.listener)
            if peer not in fillers:
                return conn
            conn.close()

    def close(self) -> None:
        for sock in (*self.fillers, self.listener):
            sock.close()


def _kernel_max(path: str) -> int:
    with open(path) as f:
        return int(f.read().split()[-1])


async def test_bytes_sent_while_dialling_wait_in_the_kernel_not_in_the_proxy(
        api: AsyncToxiproxyClient) -> None:
    """Toxiproxy dials the upstream before its links start reading the client socket, so what
    a client sends meanwhile stays in TCP buffers and the client is flow-controlled. We read
    nothing from the client until the upstream answers: the client can get no more than its
    send buffer plus the proxy socket's receive buffer accepted, and all of it arrives in
    order once the upstream accepts."""
    upstream = SlowDialUpstream()
    try:
        proxy = await api.create_proxy("p", upstream.address)
        host, _, port = proxy.listen.rpartition(":")
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 << 10)
        client.connect((host, int(port)))
        client.setblocking(False)
        bound = (client.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                 + _kernel_max("/proc/sys/net/ipv4/tcp_rmem"))
        total = bound + (8 << 20)
        chunk = bytes(range(256)) * 256  # 64 KiB
        sent, digest, idle = 0, hashlib.sha256(), 0
        while sent < total and idle < 20:  # until 1 s without progress
            progressed = False
            with contextlib.suppress(BlockingIOError):
                while sent < total:
                    n = client.send(chunk)
                    digest.update(chunk[:n])
                    sent += n
                    progressed = True
            idle = 0 if progressed else idle + 1
            await asyncio.sleep(0.05)  # the proxy runs in this loop: let it read if it would
        assert sent <= bound, f"{sent} bytes accepted while dialling (bound {bound})"
        conn = await upstream.release()
        conn.setblocking(False)
        client.shutdown(socket.SHUT_WR)
        loop = asyncio.get_running_loop()
        received, seen = 0, hashlib.sha256()
        async with asyncio.timeout(20):
            while data := await loop.sock_recv(conn, 1 << 20):
                received += len(data)
                seen.update(data)
        assert received == sent and seen.digest() == digest.digest()
        conn.close()
        client.close()
    finally:
        upstream.close()


# -- reset_peer (toxics/reset_peer.go, link.go Start) --------------------------------------------
class _EchoRecorder(Recorder):
    """An upstream that echoes and records how its connection ended."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self.transport.write(data)


async def _recording_upstream() -> tuple[asyncio.AbstractServer, str, list[_EchoRecorder],
                                         asyncio.Event]:
    accepted: list[_EchoRecorder] = []
    arrived = asyncio.Event()

    def factory() -> _EchoRecorder:
        accepted.append(_EchoRecorder())
        arrived.set()
        return accepted[-1]

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    return server, f"{host}:{port}", accepted, arrived


@pytest.mark.parametrize("stream", ["upstream", "downstream"])
@pytest.mark.parametrize("when", ["before connecting", "on a live connection"])
async def test_reset_peer_resets_both_sockets(api: AsyncToxiproxyClient, stream: str,
                                              when: str) -> None:
    """Toxiproxy's link.Start sets SO_LINGER 0 on both sockets of a link whose chain holds a
    reset_peer, whatever its direction; the toxic closes the link's destination and the paired
    link then closes the other socket: client and upstream both get an RST. (A reset_peer added
    to a live connection: Toxiproxy never sets the linger, so both sides get a FIN; we reset
    them too, see the README's known differences.)"""
    server, address, accepted, arrived = await _recording_upstream()
    try:
        proxy = await api.create_proxy("p", address)
        if when == "before connecting":
            await api.add_toxic("p", "reset_peer", stream=stream, attributes={"timeout": 0})
        rec = await connect(proxy.listen)
        if when == "on a live connection":
            await round_trip(rec, b"hello")
            await api.add_toxic("p", "reset_peer", stream=stream, attributes={"timeout": 0})
        rec.transport.write(b"boom")  # the first data through the toxic's direction
        assert isinstance(await rec.wait_closed(within=5), ConnectionResetError)
        await asyncio.wait_for(arrived.wait(), 5)
        assert isinstance(await accepted[0].wait_closed(within=5), ConnectionResetError)
    finally:
        server.close()
        for upstream in accepted:
            if not upstream.lost.done():
                upstream.transport.abort()
        await server.wait_closed()


def _hostname_for_loopback() -> str | None:
    """This machine's hostname when it resolves to 127.0.0.1 (as /etc/hosts often says)."""
    name = socket.gethostname()
    try:
        return name if socket.gethostbyname(name) == "127.0.0.1" and name != "localhost" else None
    except OSError:
        return None


async def test_populate_with_a_hostname_for_the_bound_address_keeps_the_proxy(
        api: AsyncToxiproxyClient, echo: TcpServer, fault_server: FaultProxyServer) -> None:
    """Toxiproxy 2.12 uses the same resolving comparison for /populate (#631): any name that
    resolves to the bound address, not only `localhost`, leaves the proxy and its
    connections alone."""
    name = _hostname_for_loopback()
    if name is None:
        pytest.skip("this machine's hostname does not resolve to 127.0.0.1 (add it to "
                    "/etc/hosts to run this test)")
    proxy = await api.create_proxy("p", echo.address)
    port = proxy.listen.rpartition(":")[2]
    rec = await connect(proxy.listen)
    await round_trip(rec, b"before")
    async with httpx.AsyncClient(base_url=fault_server.url, timeout=10) as http:
        response = await http.post("/populate", json=[
            {"name": "p", "listen": f"{name}:{port}", "upstream": echo.address}])
    assert response.status_code == 201, response.text
    assert response.json()["proxies"][0]["listen"] == proxy.listen
    await round_trip(rec, b"after")
    assert "proxy_deleted" not in _kinds(await api.events("p"))
    rec.transport.close()


# -- removing a timeout toxic (toxics/timeout.go Cleanup, link.go RemoveToxic) -------------------
async def test_removing_a_timeout_toxic_closes_connections_it_was_not_rolled_into(
        api: AsyncToxiproxyClient, echo: TcpServer) -> None:
    """TimeoutToxic.Cleanup closes the stub whether its toxicity roll ran the toxic or a noop,
    so removing a timeout toxic ends every connection in its direction, including those where
    it never held a byte."""
    proxy = await api.create_proxy("p", echo.address)
    rec = await connect(proxy.listen)
    await round_trip(rec, b"before")
    await api.add_toxic("p", "timeout", name="hole", toxicity=0, attributes={"timeout": 0})
    assert (await _active(api, "p", "downstream"))["hole"] is False
    await round_trip(rec, b"not held")  # rolled out: bytes still flow
    await api.remove_toxic("p", "hole")
    assert await rec.wait_closed(within=3) is None  # closed in order (FIN), not reset
    assert bytes(rec.data) == b"beforenot held"
