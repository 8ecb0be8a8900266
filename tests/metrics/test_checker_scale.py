"""The checker on a history the size of a chaos run (100k ops), with known planted anomalies."""

from __future__ import annotations

import heapq
import random

from harness.metrics.checker import check
from harness.metrics.history import History

COMPANIES = 100
KEYS = 20
OPS = 100_000
STALE_EVERY = 97  # every 97th read returns the value before the latest acked one


def build(seed: int = 7) -> tuple[History, dict, int]:  # type: ignore[type-arg]
    """Ops of 50 workers on 100 companies x 20 keys, each lasting 2.5 spacings (so neighbours
    overlap); reads return the latest value acked before they began, except the planted
    stale ones: the value before it, when that write was superseded (not concurrent)."""
    rng = random.Random(seed)
    h = History()
    acked: dict = {}  # type: ignore[type-arg]  # (company, key) -> [(invoke, complete, digest)]
    in_flight: list = []  # type: ignore[type-arg]  # heap of (complete, invoke, ck, digest)
    planted = reads = 0
    for n in range(OPS):
        t = n * 10_000
        done = t + 25_000
        while in_flight and in_flight[0][0] < t:
            complete, invoke, ck, value = heapq.heappop(in_flight)
            acked.setdefault(ck, []).append((invoke, complete, value))
        process = n % 50
        company = f"c{rng.randrange(COMPANIES)}"
        key = ("session", str(rng.randrange(KEYS)))
        ck = (company, key)
        if rng.random() < 0.4:
            value = None if rng.random() < 0.05 else f"{n:x}"
            op = h.invoke(process, company, "write-keys", [key], {key: value}, at_ns=t)
            outcome = rng.random()
            if outcome < 0.02:
                op.info("StoreTimeout: 2 s", at_ns=done)  # never applied here
            elif outcome < 0.04:
                op.fail("StoreUnavailable: refused", at_ns=done)
            else:
                op.ok(source="db", at_ns=done)
                heapq.heappush(in_flight, (done, t, ck, value))
            continue
        history = acked.get(ck, [])
        found = history[-1][2] if history else None
        reads += 1
        if reads % STALE_EVERY == 0 and len(history) >= 2:
            (_, before_done, before), (latest_invoke, _, latest) = history[-2], history[-1]
            if before_done < latest_invoke and before != latest:
                found = before
                planted += 1
        h.invoke(process, company, "read-keys", [key], at_ns=t).ok({key: found}, "cache",
                                                                   at_ns=done)
    for complete, invoke, ck, value in sorted(in_flight):
        acked.setdefault(ck, []).append((invoke, complete, value))
    final = {ck: history[-1][2] for ck, history in acked.items()}
    return h, final, planted


def test_checker_handles_100k_ops_and_finds_exactly_the_planted_stale_reads() -> None:
    history, final, planted = build()
    assert len(history.ops()) == OPS
    result = check(history, final)
    assert planted > 10
    assert result.stale_reads == planted
    assert {n for n, c in result.anomaly_counts.items() if c} == {"stale-read"}
    assert result.lost_writes == 0 and result.reads + result.acked_writes + \
        result.failed_writes + result.indeterminate_writes == OPS
