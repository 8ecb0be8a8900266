"""No task, socket, thread or process outlives deleted proxies and a stopped server."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Callable

import pytest
from fault_testkit import TcpServer, connect, open_fds, round_trip

from harness.faults.client import AsyncToxiproxyClient, ToxiproxyClient
from harness.faults.provision import provision_toxiproxy
from harness.faults.server import FaultProxyServer
from harness.faults.server.thread import EmbeddedServerThread

pytestmark = pytest.mark.timeout(60)


def child_pids() -> set[int]:
    me = str(os.getpid())
    children = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and fields[0] != "Z":
            children.add(int(entry))
    return children


async def settle(check: Callable[[], bool], within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        await asyncio.sleep(0.02)
    return check()


def settle_sync(check: Callable[[], bool], within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


async def test_in_loop_server_leaves_no_tasks_or_sockets(echo: TcpServer) -> None:
    current = asyncio.current_task()
    tasks_before = {t for t in asyncio.all_tasks() if t is not current}
    fds_before = open_fds()
    server = FaultProxyServer()
    await server.start("127.0.0.1", 0)
    async with AsyncToxiproxyClient(server.url) as api:
        for name in ("a", "b"):
            proxy = await api.create_proxy(name, echo.address)
            await api.add_toxic(name, "latency", attributes={"latency": 1})
            await api.add_toxic(name, "slicer", stream="upstream",
                                attributes={"average_size": 64})
            recs = [await connect(proxy.listen) for _ in range(3)]
            for rec in recs:
                await round_trip(rec, os.urandom(1000))
            await api.add_toxic(name, "timeout", name="hole", attributes={"timeout": 0})
            for rec in recs:
                rec.transport.write(b"stalled")
        held_open = await connect(proxy.listen)  # still open when the server stops
        await api.delete_proxy("a")
        assert await api.connections("b")
    await server.close()
    await held_open.wait_closed()

    def clean() -> bool:
        return ({t for t in asyncio.all_tasks() if t is not current} == tasks_before
                and open_fds() <= fds_before)

    assert await settle(clean), (
        [t for t in asyncio.all_tasks() if t is not current and t not in tasks_before],
        open_fds() - fds_before)


def test_thread_server_leaves_no_threads_or_sockets() -> None:
    with EmbeddedServerThread():  # libuv opens one process-wide pipe on first use: not ours
        pass
    threads_before = threading.active_count()
    fds_before = open_fds()
    for _ in range(3):
        with EmbeddedServerThread() as server, ToxiproxyClient(server.url) as client:
            upstream = socket.create_server(("127.0.0.1", 0))
            proxy = client.create_proxy("t", f"127.0.0.1:{upstream.getsockname()[1]}")
            conn = socket.create_connection((proxy.listen_host, proxy.listen_port))
            accepted, _ = upstream.accept()
            conn.sendall(b"hello")
            assert accepted.recv(5) == b"hello"
            accepted.close()
            upstream.close()
            conn.close()
    assert settle_sync(lambda: threading.active_count() == threads_before)
    assert settle_sync(lambda: open_fds() <= fds_before), open_fds() - fds_before


def test_subprocess_server_is_stopped_with_everything_it_owned() -> None:
    children_before = child_pids()
    fds_before = open_fds()
    with provision_toxiproxy(prefer="embedded") as server:
        assert server.kind == "embedded" and server.extensions
        started = child_pids() - children_before
        assert len(started) == 2  # the server and its reaper
        proxy = server.client.create_proxy("s", "127.0.0.1:1")
        assert proxy.listen_port > 0
    assert settle_sync(lambda: child_pids() <= children_before), child_pids() - children_before
    assert settle_sync(lambda: open_fds() <= fds_before), open_fds() - fds_before
