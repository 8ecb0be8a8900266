"""The resilient store vs the plain (reference) store on the same database, in the same run, while
PostgreSQL is healthy; and journal replay vs a plain bulk upsert of the same rows.

- point get: `keys.get` of one pre-key, p50 latency, sides alternating call by call
  (gate resilient-point-get-max-ratio);
- bulk: `keys.set` of 812 pre-keys, throughput, median of per-round ratios
  (gate resilient-bulk-min-ratio);
- replay: K writes of 812 pre-keys (K companies, loaded while PostgreSQL was there) are
  journaled while it is unreachable (a severed fault proxy) and the store is closed; a new store
  opens on the same cache_dir. Timed: from `open()` returning (the replay is scheduled, not
  started) to `flush()` returning True. Baseline: the same rows, pre-encoded, upserted with one
  plain unnest statement per write on a raw asyncpg connection (gate journal-replay-min-ratio).
  The whole restart (open + flush: journal read, lock, first connection, schema check, clock
  and replay) is shown in the note, not gated: its fixed costs are not replay throughput.

Both stores come from the target registry (`harness.targets`), never imported here.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from fixtures.targets import close_target, target_cache_dir
from harness.authstate import codec
from harness.bench.adaptive import (
    budget_of,
    paired_calls_until_decided,
    paired_rounds_until_decided,
    throughput_ratios,
    until_decided,
)
from harness.bench.compare import Comparison, Timings, median_paired_ratio, paired_ratio_ci
from harness.bench.workload import POINT_CALLS, RAW_UPSERT, ROUNDS, pre_keys
from harness.targets import TargetSpec, resolve_target

pytestmark = pytest.mark.bench

REPLAY_WRITES = int(os.environ.get("AUTHSTATE_BENCH_REPLAY_WRITES", "10"))  # K x 812 rows
# The store whose replay is measured (a resilient-like target): `authstate-harness calibrate`
# points it at its wrapper target to slow the replay down on purpose.
REPLAY_TARGET = os.environ.get("AUTHSTATE_BENCH_REPLAY_TARGET") or "resilient"
# 40 paired rounds (~0.3 s each on a quiet 2-core machine): the order-statistics interval of
# the median then spans ranks 14..26 of 40; with the 10 rounds used before it spanned ranks 2..9
# of 10, which is how a quick run reported 0.642 (0.42, 0.73) against the 0.7 gate. Narrow
# enough that `compare` sees a 30 % slower replay (docs/gates-and-noise.md, calibration).
REPLAY_ROUNDS = int(os.environ.get("AUTHSTATE_BENCH_REPLAY_ROUNDS", "40"))


@dataclass
class Pair:
    resilient: Any
    reference: Any
    specs: tuple[TargetSpec, TargetSpec]


@pytest.fixture
def pair(bench_loop: asyncio.AbstractEventLoop, pg_dsn: str,
         tmp_path: Path) -> Iterator[Pair]:
    run = bench_loop.run_until_complete
    resilient_spec, reference_spec = resolve_target("resilient"), resolve_target("reference")
    reference = run(reference_spec.open(pg_dsn, cache_dir=target_cache_dir(tmp_path, "ref")))
    try:
        resilient = run(resilient_spec.open(pg_dsn,
                                            cache_dir=target_cache_dir(tmp_path, "res")))
        try:
            yield Pair(resilient, reference, (resilient_spec, reference_spec))
        finally:
            run(close_target(resilient, resilient_spec))
    finally:
        run(close_target(reference, reference_spec))


def test_resilient_point_get_vs_plain_store(benchmark, bench_loop, pair, record_comparison,
                                            bench_target, bench_more) -> None:
    run = bench_loop.run_until_complete
    value = pre_keys(1)["1"]
    ours_state = run(pair.resilient.load("res-co"))
    base_state = run(pair.reference.load("ref-co"))
    run(ours_state.keys.set({"pre-key": {"1": value}}))
    run(base_state.keys.set({"pre-key": {"1": value}}))

    async def ours() -> None:
        assert (await ours_state.keys.get("pre-key", ["1"]))["1"]

    async def base() -> None:
        assert (await base_state.keys.get("pre-key", ["1"]))["1"]

    target = bench_target("resilient-point-get-max-ratio")
    ours_t, base_t, got = paired_calls_until_decided(run, ours, base, calls=POINT_CALLS,
                                                     bound=target, factor=bench_more)

    async def hundred_gets() -> None:
        for _ in range(100):
            await ours()

    benchmark.pedantic(lambda: run(hundred_gets()), rounds=max(3, ROUNDS // 5), iterations=1)
    c = record_comparison(Comparison(
        "resilient keys.get one pre-key", "p50 latency", "ms", ours_t.percentile(50) * 1e3,
        base_t.percentile(50) * 1e3, higher_is_better=False, target=target,
        rounds=len(got.ratios), paired_ratio=got.value, ratio_ci=got.interval,
        added_rounds=got.added,
        note=f"baseline = the plain store on the same database; ratio = median of per-batch "
             f"p50 ratios over {len(ours_t.seconds)} calls per side; p99 resilient "
             f"{ours_t.percentile(99) * 1e3:.3f} ms vs plain {base_t.percentile(99) * 1e3:.3f} ms"
             f"; p90 {ours_t.percentile(90) * 1e3:.3f} vs {base_t.percentile(90) * 1e3:.3f} ms"))
    record_comparison(Comparison(
        "resilient keys.get one pre-key (p99, not gated)", "p99 latency", "ms",
        ours_t.percentile(99) * 1e3, base_t.percentile(99) * 1e3, higher_is_better=False,
        target=target, rounds=len(ours_t.seconds), gated=False,
        note="tail beside the gated p50"))
    benchmark.extra_info.update(ratio=c.ratio)
    assert c.decision != "failed", c.describe()


def test_resilient_bulk_pre_keys_vs_plain_store(benchmark, bench_loop, pair, record_comparison,
                                                bench_target, bench_more) -> None:
    run = bench_loop.run_until_complete
    keys = pre_keys(812)
    ours_state = run(pair.resilient.load("res-co"))
    base_state = run(pair.reference.load("ref-co"))
    target = bench_target("resilient-bulk-min-ratio")
    ours_t, base_t, got = paired_rounds_until_decided(
        lambda: run(ours_state.keys.set({"pre-key": keys})),
        lambda: run(base_state.keys.set({"pre-key": keys})), rounds=ROUNDS, bound=target,
        factor=bench_more, benchmark=benchmark)
    cache = pair.resilient.status()["cache"]
    c = record_comparison(Comparison(
        "resilient keys.set 812 pre-keys", "throughput", "keys/s", 812 / ours_t.median(),
        812 / base_t.median(), higher_is_better=True, target=target,
        rounds=len(got.ratios), paired_ratio=got.value, ratio_ci=got.interval,
        added_rounds=got.added,
        note=f"baseline = the plain store on the same database; ratio = median of per-round "
             f"ratios (ratio of medians {base_t.median() / ours_t.median():.3f}); the "
             f"resilient side also caches every row it writes ({cache['entries']} entries, "
             f"{cache['bytes'] / 1e6:.1f} MB)"))
    benchmark.extra_info.update(ratio=c.ratio)
    assert c.decision != "failed", c.describe()


async def _journal_offline(spec: TargetSpec, proxy: Any, cache_dir: Path, companies: list[str],
                           writes: list[dict[str, Any]]) -> None:
    """Load the companies while PostgreSQL is there (as running sessions have), then sever the
    proxy and write: every write is journaled."""
    store = await spec.open(proxy.dsn, cache_dir=cache_dir)
    try:
        states = [await store.load(company) for company in companies]
        async with proxy.faults.sever():
            for state, keys in zip(states, writes, strict=True):
                await state.keys.set({"pre-key": keys})
            status = store.status()
            assert status["mode"] == "degraded"
            assert status["journal"]["rows"] == 812 * len(writes)
    finally:
        await store.close()


def test_journal_replay_vs_plain_bulk_upsert(bench_loop, pg_dsn, pg_proxy, tmp_path,
                                             record_comparison, bench_target,
                                             bench_more) -> None:
    run = bench_loop.run_until_complete
    spec = resolve_target(REPLAY_TARGET)
    writes = [pre_keys(812) for _ in range(REPLAY_WRITES)]
    encoded = [(list(w), [codec.dumps_for_postgres(v) for v in w.values()]) for w in writes]
    rows = 812 * REPLAY_WRITES
    conn: asyncpg.Connection = run(asyncpg.connect(pg_dsn))
    drain_t, base_t, total_t = Timings(), Timings(), Timings()
    done = 0

    def one_round(r: int) -> None:
        """Journal the writes offline, then time the baseline and the replay back to back,
        alternating which goes first (a slow spell then scales both sides of a pair)."""
        cache_dir = target_cache_dir(tmp_path, f"replay{r}")
        companies = [f"rp{r}-{i}" for i in range(REPLAY_WRITES)]
        run(_journal_offline(spec, pg_proxy, cache_dir, companies, writes))

        async def baseline() -> float:
            started = time.perf_counter()
            for i, (ids, texts) in enumerate(encoded):
                await conn.execute(RAW_UPSERT, f"rb{r}-{i}", ids, texts)
            return time.perf_counter() - started

        async def replay() -> tuple[float, float, Any]:
            started = time.perf_counter()
            store = await spec.open(pg_dsn, cache_dir=cache_dir)
            opened = time.perf_counter()  # the replay task is scheduled, not yet run
            assert await store.flush(timeout=120)
            return opened - started, time.perf_counter() - opened, store

        if r % 2:
            opening, draining, store = run(replay())
            base = run(baseline())
        else:
            base = run(baseline())
            opening, draining, store = run(replay())
        try:
            assert store.status()["journal"]["replayed"] == REPLAY_WRITES
        finally:
            run(store.close())
        if r:  # round 0 warms both sides up
            drain_t.seconds.append(draining)
            base_t.seconds.append(base)
            total_t.seconds.append(opening + draining)

    def more(n: int) -> None:
        nonlocal done
        for _ in range(n):
            done += 1
            one_round(done)

    target = bench_target("journal-replay-min-ratio")
    try:
        for r in range(REPLAY_ROUNDS + 1):
            one_round(r)
        done = REPLAY_ROUNDS
        got = until_decided(drain_t, base_t, throughput_ratios, more, bound=target,
                            higher_is_better=True, budget=budget_of(REPLAY_ROUNDS, bench_more),
                            step=max(1, REPLAY_ROUNDS // 2))
        landed = run(conn.fetchval(
            "SELECT count(*) FROM whatsapp_keys WHERE company_id LIKE 'rp%'"))
        assert landed == rows * (done + 1)
    finally:
        run(conn.close())
    c = record_comparison(Comparison(
        f"journal replay {REPLAY_WRITES}x812 pre-keys", "throughput", "rows/s",
        rows / drain_t.median(), rows / base_t.median(), higher_is_better=True, target=target,
        rounds=len(got.ratios), paired_ratio=got.value, ratio_ci=got.interval,
        added_rounds=got.added,
        note=f"ours = from open() returning (replay scheduled) to flush() True: replay + "
             f"applied markers; baseline = one raw unnest upsert per write, pre-encoded, each "
             f"its own commit; sides alternate which goes first. With open() (journal read, "
             f"lock, first connection, schema check, clock) the restart took "
             f"{total_t.median() * 1e3:.0f} ms: "
             f"{median_paired_ratio(base_t, total_t):.2f}x the baseline's throughput"))
    record_comparison(Comparison(
        f"journal replay {REPLAY_WRITES}x812 pre-keys incl. open() (not gated)", "throughput",
        "rows/s", rows / total_t.median(), rows / base_t.median(), higher_is_better=True,
        target=target, rounds=len(total_t.seconds), gated=False,
        paired_ratio=median_paired_ratio(base_t, total_t),
        ratio_ci=paired_ratio_ci(base_t, total_t),
        note="a whole restart on a journal: open() (journal read, lock, first connection, "
             "schema check, clock) + replay"))
    assert c.decision != "failed", c.describe()
