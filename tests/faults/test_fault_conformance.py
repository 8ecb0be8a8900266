"""Details where our proxy must behave as Toxiproxy 2.12's Go server does, on real TCP.

Each test names the Toxiproxy source it follows (Shopify/toxiproxy: link.go, proxy.go, api.go,
toxics/reset_peer.go, proxy_test.go).
"""

from __future__ import annotations

import pytest
from fault_testkit import TcpServer, connect, round_trip

from harness.faults.client import AsyncToxiproxyClient

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
