"""Toxiproxy API conformance: every endpoint's status, body, defaults and errors, on the wire.

Expected values are Toxiproxy v2.12's (api.go, toxic_collection.go, proxy_collection.go).
"""

from __future__ import annotations

import asyncio
import json
import re
import socket

import httpx
import pytest
from fault_testkit import TcpServer

from harness.faults.server import FaultProxyServer
from harness.infra.ports import free_port

pytestmark = pytest.mark.timeout(30)

XID = re.compile(r"^[0-9a-v]{20}$")


def closed_port() -> str:
    return f"127.0.0.1:{free_port()}"


def refused(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text.endswith("\n")
    assert json.loads(response.text) == {"error": message, "status": status}


async def create(http: httpx.AsyncClient, name: str, upstream: str, **extra: object) -> dict:
    response = await http.post("/proxies", json={"name": name, "upstream": upstream,
                                                 "listen": "127.0.0.1:0", **extra})
    assert response.status_code == 201, response.text
    return response.json()


# -- transport ---------------------------------------------------------------------------------
async def test_version_and_request_id(http: httpx.AsyncClient) -> None:
    response = await http.get("/version")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json;charset=utf-8"
    assert response.text == '{"version": "2.12.0"}\n'
    first = response.headers["x-toxiproxy-request-id"]
    second = (await http.get("/version")).headers["x-toxiproxy-request-id"]
    assert XID.match(first) and XID.match(second) and first != second


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/version"), ("GET", "/proxies/nope"), ("PUT", "/proxies"), ("GET", "/nothing"),
    ("POST", "/proxies"),
])
async def test_every_response_has_a_request_id(http: httpx.AsyncClient, method: str,
                                               path: str) -> None:
    response = await http.request(method, path, content=b"{")
    assert XID.match(response.headers["x-toxiproxy-request-id"])


async def test_browser_user_agents_are_refused(http: httpx.AsyncClient) -> None:
    response = await http.get("/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert response.status_code == 403
    assert response.text == "User agent not allowed\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert (await http.get("/proxies", headers={"User-Agent": "curl/8"})).status_code == 200


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/proxies"), ("DELETE", "/proxies"), ("GET", "/reset"), ("GET", "/populate"),
    ("DELETE", "/version"), ("PUT", "/proxies/x"), ("DELETE", "/proxies/x/toxics"),
    ("PUT", "/proxies/x/toxics/y"),
])
async def test_wrong_method_is_405_with_empty_body(http: httpx.AsyncClient, method: str,
                                                   path: str) -> None:
    response = await http.request(method, path)
    assert response.status_code == 405
    assert response.content == b""


async def test_unknown_path_is_go_404(http: httpx.AsyncClient) -> None:
    for path in ("/nothing", "/proxies/", "/proxies/a/b", "/metrics"):
        response = await http.get(path)
        assert response.status_code == 404
        assert response.text == "404 page not found\n"


# -- proxies -----------------------------------------------------------------------------------
async def test_proxy_index_empty_then_keyed_by_name(http: httpx.AsyncClient) -> None:
    response = await http.get("/proxies")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    await create(http, "b", closed_port())
    await create(http, "a", closed_port())
    body = (await http.get("/proxies")).json()
    assert list(body) == ["a", "b"]
    assert set(body["a"]) == {"name", "listen", "upstream", "enabled", "toxics"}


async def test_create_resolves_port_zero_and_does_not_dial(http: httpx.AsyncClient) -> None:
    upstream = closed_port()  # nothing listens there: creating must still succeed
    proxy = await create(http, "pg", upstream)
    host, _, port = proxy["listen"].rpartition(":")
    assert host == "127.0.0.1" and int(port) > 0
    assert proxy == {"name": "pg", "listen": proxy["listen"], "upstream": upstream,
                     "enabled": True, "toxics": []}
    assert not refused(proxy["listen"])


async def test_create_disabled_does_not_listen(http: httpx.AsyncClient) -> None:
    port = free_port()
    response = await http.post("/proxies", json={"name": "off", "upstream": closed_port(),
                                                 "listen": f"127.0.0.1:{port}",
                                                 "enabled": False})
    assert response.status_code == 201
    assert response.json()["enabled"] is False
    assert refused(f"127.0.0.1:{port}")


async def test_create_empty_listen_binds_all_interfaces(http: httpx.AsyncClient) -> None:
    response = await http.post("/proxies", json={"name": "any", "upstream": closed_port()})
    assert response.status_code == 201
    assert re.match(r"^(\[::\]|0\.0\.0\.0):\d+$", response.json()["listen"])


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"upstream": "127.0.0.1:1"}, 400, "missing required field: name"),
    ({"name": "x"}, 400, "missing required field: upstream"),
    ({"name": "", "upstream": "127.0.0.1:1"}, 400, "missing required field: name"),
    ({"name": 5, "upstream": "127.0.0.1:1"}, 400,
     "bad request body: json: cannot unmarshal number into Go struct field Proxy.name of type "
     "string"),
    ({"name": "x", "upstream": "127.0.0.1:1", "enabled": "yes"}, 400,
     "bad request body: json: cannot unmarshal string into Go struct field Proxy.enabled of "
     "type bool"),
    ([], 400, "bad request body: json: cannot unmarshal array into Go value of type "
     "toxiproxy.Proxy"),
    ({"name": "x", "upstream": "127.0.0.1:1", "listen": "nohostport"}, 500,
     "listen tcp: address nohostport: missing port in address"),
])
async def test_create_errors(http: httpx.AsyncClient, body: object, status: int,
                             message: str) -> None:
    assert_error(await http.post("/proxies", json=body), status, message)
    assert (await http.get("/proxies")).json() == {}


async def test_create_bad_json_and_empty_body(http: httpx.AsyncClient) -> None:
    response = await http.post("/proxies", content=b"{nope")
    assert response.status_code == 400
    assert json.loads(response.text)["error"].startswith("bad request body: invalid character")
    assert_error(await http.post("/proxies", content=b""), 400, "bad request body: EOF")


async def test_create_duplicate_is_409(http: httpx.AsyncClient) -> None:
    await create(http, "dup", closed_port())
    response = await http.post("/proxies", json={"name": "dup", "upstream": closed_port()})
    assert_error(response, 409, "proxy already exists")


async def test_create_bind_failure_is_500(http: httpx.AsyncClient) -> None:
    taken = await create(http, "first", closed_port())
    response = await http.post("/proxies", json={"name": "second", "upstream": closed_port(),
                                                 "listen": taken["listen"]})
    assert_error(response, 500, f"listen tcp {taken['listen']}: bind: address already in use")
    assert list((await http.get("/proxies")).json()) == ["first"]


async def test_go_decoder_semantics(http: httpx.AsyncClient) -> None:
    """Keys match case-insensitively, unknown keys and trailing bytes are ignored."""
    response = await http.post("/proxies", content=b'{"Name": "ci", "UPSTREAM": "127.0.0.1:1",'
                               b' "listen": "127.0.0.1:0", "extra": 1} trailing')
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "ci"


async def test_show_and_404(http: httpx.AsyncClient) -> None:
    proxy = await create(http, "shown", closed_port())
    response = await http.get("/proxies/shown")
    assert response.status_code == 200 and response.json() == proxy
    assert_error(await http.get("/proxies/missing"), 404, "proxy not found")


@pytest.mark.parametrize("method", ["PATCH", "POST"])
async def test_update_is_partial(http: httpx.AsyncClient, method: str) -> None:
    proxy = await create(http, "upd", closed_port())
    response = await http.request(method, "/proxies/upd", json={"enabled": False})
    assert response.status_code == 200
    assert response.json() == {**proxy, "enabled": False}
    assert refused(proxy["listen"])
    response = await http.request(method, "/proxies/upd", json={"enabled": True})
    assert response.json() == proxy  # re-enabled on the same address
    assert not refused(proxy["listen"])
    new_upstream = closed_port()
    response = await http.request(method, "/proxies/upd", json={"upstream": new_upstream})
    assert response.json() == {**proxy, "upstream": new_upstream}
    assert_error(await http.request(method, "/proxies/nope", json={}), 404, "proxy not found")
    assert_error(await http.request(method, "/proxies/upd", content=b"["), 400,
                 "bad request body: unexpected EOF")


async def test_update_listen_restarts_on_new_address(http: httpx.AsyncClient) -> None:
    proxy = await create(http, "moved", closed_port())
    port = free_port()
    response = await http.patch("/proxies/moved", json={"listen": f"127.0.0.1:{port}"})
    assert response.json()["listen"] == f"127.0.0.1:{port}"
    assert refused(proxy["listen"])
    assert not refused(f"127.0.0.1:{port}")


async def test_delete(http: httpx.AsyncClient) -> None:
    proxy = await create(http, "gone", closed_port())
    response = await http.delete("/proxies/gone")
    assert response.status_code == 204 and response.content == b""
    assert refused(proxy["listen"])
    assert_error(await http.get("/proxies/gone"), 404, "proxy not found")
    assert_error(await http.delete("/proxies/gone"), 404, "proxy not found")


# -- populate ----------------------------------------------------------------------------------
async def test_populate_creates_and_keeps_unchanged(http: httpx.AsyncClient,
                                                    echo: TcpServer) -> None:
    body = [{"name": "one", "listen": "127.0.0.1:0", "upstream": echo.address},
            {"name": "two", "listen": "127.0.0.1:0", "upstream": echo.address,
             "enabled": False}]
    response = await http.post("/populate", json=body)
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    created = {p["name"]: p for p in response.json()["proxies"]}
    assert created["one"]["enabled"] is True and created["two"]["enabled"] is False
    # a live connection through "one" survives a populate with the same listen + upstream
    host, _, port = created["one"]["listen"].rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    again = [{"name": "one", "listen": created["one"]["listen"], "upstream": echo.address},
             {"name": "two", "listen": "127.0.0.1:0", "upstream": closed_port()}]
    response = await http.post("/populate", json=again)
    assert response.status_code == 201
    after = {p["name"]: p for p in response.json()["proxies"]}
    assert after["one"] == created["one"]
    assert after["two"]["upstream"] == again[1]["upstream"]  # changed: replaced
    writer.write(b"still here")
    assert await asyncio.wait_for(reader.readexactly(10), 5) == b"still here"
    writer.close()


async def test_populate_validates_everything_first(http: httpx.AsyncClient) -> None:
    body = [{"name": "ok", "upstream": closed_port()}, {"name": "bad"}]
    response = await http.post("/populate", json=body)
    assert response.status_code == 400
    assert response.json() == {"error": "missing required field: upstream at proxy 2",
                               "status": 400, "proxies": None}
    assert (await http.get("/proxies")).json() == {}
    response = await http.post("/populate", json={"name": "x"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad request body: json: cannot unmarshal object")


async def test_populate_empty_and_bind_failure(http: httpx.AsyncClient) -> None:
    response = await http.post("/populate", json=[])
    assert response.status_code == 201 and response.json() == {"proxies": None}
    first = await create(http, "holder", closed_port())
    response = await http.post("/populate", json=[
        {"name": "fine", "listen": "127.0.0.1:0", "upstream": closed_port()},
        {"name": "clash", "listen": first["listen"], "upstream": closed_port()}])
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == f"listen tcp {first['listen']}: bind: address already in use"
    assert [p["name"] for p in body["proxies"]] == ["fine"]


# -- toxics ------------------------------------------------------------------------------------
async def test_toxic_defaults_and_listing_order(http: httpx.AsyncClient) -> None:
    await create(http, "t", closed_port())
    assert (await http.get("/proxies/t/toxics")).json() == []
    response = await http.post("/proxies/t/toxics", json={"type": "latency"})
    assert response.status_code == 200
    assert response.json() == {"attributes": {"latency": 0, "jitter": 0},
                               "name": "latency_downstream", "type": "latency",
                               "stream": "downstream", "toxicity": 1}
    await http.post("/proxies/t/toxics", json={"type": "bandwidth", "stream": "upstream",
                                               "attributes": {"rate": 5}})
    await http.post("/proxies/t/toxics", json={"type": "slicer", "name": "s",
                                               "toxicity": 0.5,
                                               "attributes": {"average_size": 10}})
    await http.post("/proxies/t/toxics", json={"type": "timeout", "stream": "UpStream"})
    listing = (await http.get("/proxies/t/toxics")).json()
    assert [(t["name"], t["stream"]) for t in listing] == [
        ("bandwidth_upstream", "upstream"), ("timeout_UpStream", "UpStream"),
        ("latency_downstream", "downstream"), ("s", "downstream")]
    assert listing[3]["attributes"] == {"average_size": 10, "size_variation": 0, "delay": 0}
    assert listing[3]["toxicity"] == 0.5
    assert (await http.get("/proxies/t")).json()["toxics"] == listing


@pytest.mark.parametrize(("type_", "attributes"), [
    ("latency", {"latency": 0, "jitter": 0}), ("bandwidth", {"rate": 0}),
    ("slow_close", {"delay": 0}), ("timeout", {"timeout": 0}), ("reset_peer", {"timeout": 0}),
    ("slicer", {"average_size": 0, "size_variation": 0, "delay": 0}),
    ("limit_data", {"bytes": 0}), ("noop", {}),
])
async def test_every_toxic_type_and_its_attributes(http: httpx.AsyncClient, type_: str,
                                                   attributes: dict) -> None:
    await create(http, "types", closed_port())
    response = await http.post("/proxies/types/toxics", json={"type": type_})
    assert response.status_code == 200
    assert response.json()["attributes"] == attributes


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"type": "latency", "stream": "sideways"}, 400,
     "stream was invalid, can be either upstream or downstream"),
    ({"type": "nope"}, 400, "invalid toxic type"),
    ({"type": "nope", "stream": "sideways"}, 400,
     "stream was invalid, can be either upstream or downstream"),  # stream checked first
    ({"type": "latency", "attributes": {"latency": "1s"}}, 400,
     "bad request body: json: cannot unmarshal string into Go struct field "
     "LatencyToxic.attributes.latency of type int64"),
    ({"type": "latency", "attributes": {"latency": 1.5}}, 400,
     "bad request body: json: cannot unmarshal number 1.5 into Go struct field "
     "LatencyToxic.attributes.latency of type int64"),
    ({"type": "latency", "toxicity": "all"}, 400,
     "bad request body: json: cannot unmarshal string into Go struct field "
     "ToxicWrapper.toxicity of type float32"),
])
async def test_toxic_create_errors(http: httpx.AsyncClient, body: dict, status: int,
                                   message: str) -> None:
    await create(http, "bad", closed_port())
    assert_error(await http.post("/proxies/bad/toxics", json=body), status, message)
    assert (await http.get("/proxies/bad/toxics")).json() == []


async def test_toxic_duplicate_and_missing(http: httpx.AsyncClient) -> None:
    await create(http, "d", closed_port())
    await http.post("/proxies/d/toxics", json={"type": "latency", "name": "x"})
    response = await http.post("/proxies/d/toxics", json={"type": "timeout", "name": "x",
                                                          "stream": "upstream"})
    assert_error(response, 409, "toxic already exists")  # names are unique across streams
    assert_error(await http.post("/proxies/none/toxics", json={"type": "latency"}), 404,
                 "proxy not found")
    assert_error(await http.get("/proxies/none/toxics"), 404, "proxy not found")
    assert_error(await http.get("/proxies/d/toxics/y"), 404, "toxic not found")
    assert_error(await http.patch("/proxies/d/toxics/y", json={}), 404, "toxic not found")
    assert_error(await http.delete("/proxies/d/toxics/y"), 404, "toxic not found")


@pytest.mark.parametrize("method", ["PATCH", "POST"])
async def test_toxic_update_merges_attributes_and_toxicity(http: httpx.AsyncClient,
                                                           method: str) -> None:
    await create(http, "m", closed_port())
    await http.post("/proxies/m/toxics", json={"type": "latency", "name": "lat",
                                               "attributes": {"latency": 100, "jitter": 10}})
    response = await http.request(method, "/proxies/m/toxics/lat", json={
        "attributes": {"latency": 200}, "stream": "upstream", "type": "timeout",
        "name": "renamed"})
    assert response.status_code == 200
    assert response.json() == {"attributes": {"latency": 200, "jitter": 10}, "name": "lat",
                               "type": "latency", "stream": "downstream", "toxicity": 1}
    response = await http.request(method, "/proxies/m/toxics/lat", json={"toxicity": 0.25})
    assert response.json()["toxicity"] == 0.25
    assert response.json()["attributes"] == {"latency": 200, "jitter": 10}
    shown = await http.get("/proxies/m/toxics/lat")
    assert shown.status_code == 200 and shown.json() == response.json()


async def test_toxic_delete(http: httpx.AsyncClient) -> None:
    await create(http, "del", closed_port())
    await http.post("/proxies/del/toxics", json={"type": "latency"})
    response = await http.delete("/proxies/del/toxics/latency_downstream")
    assert response.status_code == 204 and response.content == b""
    assert (await http.get("/proxies/del/toxics")).json() == []


async def test_reset_enables_everything_and_removes_toxics(http: httpx.AsyncClient) -> None:
    a = await create(http, "ra", closed_port())
    await create(http, "rb", closed_port(), enabled=False)
    await http.post("/proxies/ra/toxics", json={"type": "latency"})
    await http.patch("/proxies/ra", json={"enabled": False})
    response = await http.post("/reset")
    assert response.status_code == 204 and response.content == b""
    proxies = (await http.get("/proxies")).json()
    assert all(p["enabled"] and p["toxics"] == [] for p in proxies.values())
    assert proxies["ra"]["listen"] == a["listen"]
    assert not refused(a["listen"])


# -- metrics (only with --proxy-metrics) and extensions ----------------------------------------
async def test_metrics_when_enabled(echo: TcpServer) -> None:
    server = FaultProxyServer(proxy_metrics=True)
    await server.start("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            proxy = await create(http, "m", echo.address)
            host, _, port = proxy["listen"].rpartition(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"12345")
            assert await reader.readexactly(5) == b"12345"
            response = await http.get("/metrics")
            writer.close()
        assert response.status_code == 200
        text = response.text
        labels = f'listener="{proxy["listen"]}",proxy="m",upstream="{echo.address}"'
        assert f'toxiproxy_proxy_received_bytes_total{{direction="upstream",{labels}}} 5' in text
        assert f'toxiproxy_proxy_sent_bytes_total{{direction="downstream",{labels}}} 5' in text
    finally:
        await server.close()


async def test_events_and_connections_extensions(http: httpx.AsyncClient,
                                                 echo: TcpServer) -> None:
    proxy = await create(http, "ev", echo.address)
    host, _, port = proxy["listen"].rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"abc")
    await reader.readexactly(3)
    connections = (await http.get("/proxies/ev/connections")).json()
    assert len(connections) == 1
    assert connections[0]["upstream"]["received"] == 3
    assert connections[0]["downstream"]["sent"] == 3
    writer.close()
    await writer.wait_closed()
    async with asyncio.timeout(5):
        while True:
            body = (await http.get("/proxies/ev/events")).json()
            types = [e["type"] for e in body["events"]]
            if "connection_closed" in types:
                break
            await asyncio.sleep(0.02)
    assert types[:2] == ["proxy_created", "connection_opened"]
    closed = body["events"][-1]
    assert closed["bytes"]["upstream"] == {"received": 3, "sent": 3, "dropped": 0}
    assert closed["monotonic"] > body["events"][0]["monotonic"]
    assert body["seed"] == 1234
    later = (await http.get("/proxies/ev/events", params={"since": closed["seq"]})).json()
    assert later["events"] == []
    assert_error(await http.get("/proxies/nope/events"), 404, "proxy not found")
    assert (await http.get("/events")).json()["events"][-1]["type"] == "connection_closed"
