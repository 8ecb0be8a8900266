"""toxiproxy-python 0.1.1 drives our server exactly as it drives a real Toxiproxy.

That client keeps the API host/port in class-global state (`APIConsumer.host/port`); the fixture
points it at our server and restores it afterwards so other tests never see the change.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import asyncpg
import pytest
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import NotFound, ProxyExists

from harness.faults.provision import ProvisionedToxiproxy
from harness.infra.ports import free_port
from harness.infra.postgres import PostgresServer

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def legacy(toxiproxy_server: ProvisionedToxiproxy) -> Iterator[Toxiproxy]:
    saved = (APIConsumer.host, APIConsumer.port)
    host, _, port = toxiproxy_server.url.removeprefix("http://").rpartition(":")
    server = Toxiproxy()
    server.update_api_consumer(host, int(port))
    try:
        yield server
    finally:
        for proxy in server.proxies().values():
            if proxy.name.startswith("legacy-"):
                proxy.destroy()
        APIConsumer.host, APIConsumer.port = saved


def accepts(listen: str) -> bool:
    host, _, port = listen.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except ConnectionRefusedError:
        return False
    return True


def query_through(listen: str, pg_server: PostgresServer) -> int:
    host, _, port = listen.rpartition(":")
    dsn = pg_server.dsn.replace(f"{pg_server.host}:{pg_server.port}", f"{host}:{port}")

    async def go() -> int:
        conn = await asyncpg.connect(dsn, timeout=5)
        try:
            return int(await conn.fetchval("SELECT 7"))
        finally:
            await conn.close()

    return asyncio.run(go())


def test_create_toxic_down_destroy(legacy: Toxiproxy, pg_server: PostgresServer) -> None:
    assert legacy.running()
    assert legacy.version() == b'{"version": "2.12.0"}\n'
    proxy = legacy.create(upstream=f"{pg_server.host}:{pg_server.port}", name="legacy-pg")
    assert proxy.name == "legacy-pg" and proxy.enabled is True
    assert not proxy.listen.endswith(":0")
    assert query_through(proxy.listen, pg_server) == 7

    proxy.add_toxic(type="latency", attributes={"latency": 20})
    toxics = proxy.toxics()
    assert list(toxics) == ["latency_downstream"]
    assert toxics["latency_downstream"].attributes == {"latency": 20, "jitter": 0}
    assert proxy.get_toxic("latency_downstream").toxicity == 1
    assert query_through(proxy.listen, pg_server) == 7
    assert proxy.destroy_toxic("latency_downstream") is True
    assert proxy.toxics() == {}

    with proxy.down():
        assert not accepts(proxy.listen)
        assert legacy.get_proxy("legacy-pg").enabled is False
    assert accepts(proxy.listen)
    assert query_through(proxy.listen, pg_server) == 7

    with pytest.raises(ProxyExists):
        legacy.create(upstream="127.0.0.1:1", name="legacy-pg")
    assert legacy.reset() is True
    assert proxy.destroy() is True
    assert legacy.get_proxy("legacy-pg") is None
    with pytest.raises(NotFound):
        proxy.destroy()


def test_populate_and_destroy_all(legacy: Toxiproxy) -> None:
    created = legacy.populate([
        {"name": "legacy-a", "upstream": "127.0.0.1:1", "listen": "127.0.0.1:0"},
        {"name": "legacy-b", "upstream": "127.0.0.1:2", "listen": f"127.0.0.1:{free_port()}"},
    ])
    assert sorted(p.name for p in created) == ["legacy-a", "legacy-b"]
    assert {"legacy-a", "legacy-b"} <= set(legacy.proxies())


def test_a_500_surfaces_as_keyerror_like_with_real_toxiproxy(legacy: Toxiproxy) -> None:
    """Its known quirk: it does not check 500s, so a bind failure becomes KeyError('name')."""
    first = legacy.create(upstream="127.0.0.1:1", name="legacy-first")
    with pytest.raises(KeyError):
        legacy.create(upstream="127.0.0.1:1", name="legacy-clash", listen=first.listen)
