"""The typed client (sync and async): results, errors carrying status and message, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from fault_testkit import TcpServer

from harness.errors import HarnessError
from harness.faults.client import (
    AsyncToxiproxyClient,
    BadRequestError,
    ConflictError,
    NotFoundError,
    Proxy,
    Toxic,
    ToxiproxyClient,
    ToxiproxyError,
    ToxiproxyUnavailable,
)
from harness.faults.server.thread import EmbeddedServerThread
from harness.infra.ports import free_port

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(scope="module")
def thread_server() -> Iterator[EmbeddedServerThread]:
    with EmbeddedServerThread() as server:
        yield server


@pytest.fixture
def client(thread_server: EmbeddedServerThread) -> Iterator[ToxiproxyClient]:
    with ToxiproxyClient(thread_server.url, timeout=5) as client:
        yield client
        client.reset()
        for name in client.proxies():
            client.delete_proxy(name)


def test_sync_client_round_trip(client: ToxiproxyClient) -> None:
    assert client.version() == "2.12.0"
    proxy = client.create_proxy("db", f"127.0.0.1:{free_port()}")
    assert isinstance(proxy, Proxy) and proxy.enabled and proxy.listen_port > 0
    assert proxy.listen_host == "127.0.0.1"
    toxic = client.add_toxic("db", "latency", stream="upstream", attributes={"latency": 5})
    assert toxic == Toxic("latency_upstream", "latency", "upstream", 1.0,
                          {"latency": 5, "jitter": 0})
    assert client.update_toxic("db", toxic.name, toxicity=0.5).toxicity == 0.5
    assert client.get_toxic("db", toxic.name).attributes["latency"] == 5
    assert client.get_proxy("db").toxics[0].name == toxic.name
    assert client.disable_proxy("db").enabled is False
    assert client.enable_proxy("db").listen == proxy.listen
    client.remove_toxic("db", toxic.name)
    assert client.toxics("db") == []
    assert set(client.proxies()) == {"db"}
    populated = client.populate([{"name": "other", "upstream": "127.0.0.1:1",
                                  "listen": "127.0.0.1:0"}])
    assert [p.name for p in populated] == ["other"]
    client.delete_proxy("db")
    assert set(client.proxies()) == {"other"}


def test_errors_carry_status_and_server_message(client: ToxiproxyClient) -> None:
    with pytest.raises(NotFoundError) as info:
        client.get_proxy("missing")
    assert info.value.status == 404 and info.value.server_message == "proxy not found"
    assert isinstance(info.value, ToxiproxyError) and isinstance(info.value, HarnessError)
    assert info.value.hint
    client.create_proxy("x", "127.0.0.1:1")
    with pytest.raises(ConflictError) as conflict:
        client.create_proxy("x", "127.0.0.1:1")
    assert conflict.value.status == 409
    with pytest.raises(BadRequestError) as bad:
        client.add_toxic("x", "sideways-latency")
    assert bad.value.server_message == "invalid toxic type"
    taken = client.get_proxy("x").listen
    with pytest.raises(ToxiproxyError) as bind:
        client.create_proxy("y", "127.0.0.1:1", listen=taken)
    assert bind.value.status == 500 and "address already in use" in bind.value.server_message
    assert "HTTP 500" in str(bind.value)


def test_unreachable_server_is_a_clear_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with ToxiproxyClient(url, timeout=1) as client, pytest.raises(ToxiproxyUnavailable) as info:
        client.version()
    assert info.value.status == 0
    assert url in info.value.message and "proxy serve" in (info.value.hint or "")


async def test_async_client_and_timeouts(api: AsyncToxiproxyClient, echo: TcpServer) -> None:
    proxy = await api.create_proxy("a", echo.address)
    assert (await api.get_proxy("a")) == proxy
    with pytest.raises(NotFoundError):
        await api.remove_toxic("a", "nope")
    events = await api.events("a")
    assert [e.type for e in events] == ["proxy_created"]
    assert events[0].data["listen"] == proxy.listen and events[0].data["enabled"] is True

    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    silent = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        async with AsyncToxiproxyClient(f"http://127.0.0.1:{port}", timeout=0.3) as slow:
            with pytest.raises(ToxiproxyUnavailable) as info:
                await slow.version()
        assert "ReadTimeout" in info.value.message
    finally:
        silent.close()
