"""The target (reference unless --target) vs raw asyncpg on the same database, in the same run:
the ratios are the result.

- bulk: `keys.set` of 812 pre-keys (Baileys' first connect) vs one raw multi-row upsert of the
  same rows, pre-encoded (so the target's encoding, validation and locking are what the ratio
  charges it); the ratio is the median of each round's ratio (see `harness.bench.compare`);
- point get: `keys.get` of one key vs a raw asyncpg fetch of the same row (per-call latency timed
  inside the loop, sides alternating); the ratio is the median of per-batch p50 ratios.

Every gated ratio carries its ~95 % interval; while it straddles the gate, more rounds run
(`harness.bench.adaptive`, at most `more-bench-rounds` x the base).
- codec: encode/decode of an ~8 KB libsignal session record (absolute figures only).

The raw side borrows the target's pool when the target exposes one (`.pool`, as the reference
store does: same connections, command_timeout and release); otherwise it opens its own pool of
the reference store's default size on the same database. The comparison notes say which.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from fixtures.targets import close_target, target_cache_dir
from harness.authstate import codec
from harness.bench.adaptive import paired_calls_until_decided, paired_rounds_until_decided
from harness.bench.compare import Comparison
from harness.bench.workload import (
    POINT_CALLS,
    RAW_GET,
    RAW_UPSERT,
    ROUNDS,
    pre_keys,
    session_record,
)
from harness.metrics.figures import Figure
from harness.targets import TargetSpec

pytestmark = pytest.mark.bench

RAW_POOL_SIZE = (1, 10)  # the reference store's default min/max, for a raw pool of our own


@dataclass
class Bench:
    """The target opened on the bench loop, and the raw side's pool (see the module docstring)."""

    store: Any
    pool: asyncpg.Pool
    raw_pool: str  # how the raw side got its pool, for the comparison notes


async def _no_reset(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (as the reference store's pool does), so the raw
    side pays no extra round trip per call; it never leaves a transaction open."""


async def _raw_pool(dsn: str) -> asyncpg.Pool:
    """Created inside the loop (asyncpg binds a pool to the running loop)."""
    return await asyncpg.create_pool(dsn, min_size=RAW_POOL_SIZE[0], max_size=RAW_POOL_SIZE[1],
                                     reset=_no_reset)


OUT_OF_PROCESS = ("{name} runs in another process: a ratio to raw asyncpg in this process would "
                  "mostly measure the process boundary, not the store (the node bridge bench "
                  "measures that boundary against the same module called in-process)")


@pytest.fixture
def bench(bench_loop: asyncio.AbstractEventLoop, target_spec: TargetSpec, pg_dsn: str,
          tmp_path: Path, record_figure):  # type: ignore[no-untyped-def]
    if not target_spec.in_process:
        reason = OUT_OF_PROCESS.format(name=target_spec.name)
        for gate, better in (("bench-bulk-min-ratio", "higher"),
                             ("bench-point-get-max-ratio", "lower")):
            record_figure(Figure(suite="bench", name=f"{gate} [{target_spec.name}]", value=None,
                                 unit="x", better=better, gate=gate, notes=reason,
                                 context={"not_applicable": reason}))
        pytest.skip(f"not applicable: {reason}")
    run = bench_loop.run_until_complete
    store = run(target_spec.open(pg_dsn, cache_dir=target_cache_dir(tmp_path)))
    own_pool = None
    try:
        pool = getattr(store, "pool", None)
        if isinstance(pool, asyncpg.Pool):
            how = (f"the {target_spec.name} target's own pool (same connections, "
                   "command_timeout and release)")
        else:
            own_pool = pool = run(_raw_pool(pg_dsn))
            how = (f"its own asyncpg pool ({RAW_POOL_SIZE[0]}-{RAW_POOL_SIZE[1]} connections) "
                   f"on the same database ({target_spec.name} exposes no .pool)")
        yield Bench(store, pool, how)
    finally:
        try:
            if own_pool is not None:
                run(own_pool.close())
        finally:
            run(close_target(store, target_spec))


def test_bulk_pre_keys_vs_raw_upsert(benchmark, bench_loop, bench, record_comparison,
                                     bench_target, bench_more) -> None:
    keys = pre_keys(812)
    ids = list(keys)
    texts = [codec.dumps(v) for v in keys.values()]
    run = bench_loop.run_until_complete
    state = run(bench.store.load("our-co"))

    async def raw() -> None:
        async with bench.pool.acquire() as conn:
            await conn.execute(RAW_UPSERT, "raw-co", ids, texts)

    target = bench_target("bench-bulk-min-ratio")
    ours_t, base_t, got = paired_rounds_until_decided(
        lambda: run(state.keys.set({"pre-key": keys})), lambda: run(raw()), rounds=ROUNDS,
        bound=target, factor=bench_more, benchmark=benchmark)
    c = record_comparison(Comparison(
        "keys.set 812 pre-keys", "throughput", "keys/s", 812 / ours_t.median(),
        812 / base_t.median(), higher_is_better=True, target=target,
        rounds=len(got.ratios), paired_ratio=got.value, ratio_ci=got.interval,
        added_rounds=got.added,
        note=f"raw = one unnest upsert of pre-encoded rows on {bench.raw_pool}; ratio = median "
             "of per-round ratios"))
    benchmark.extra_info.update(ratio=c.ratio, baseline_keys_per_s=c.baseline)
    assert c.decision != "failed", c.describe()


@pytest.mark.parametrize("kind", ["pre-key", "session"])
def test_point_get_vs_raw_fetch(kind, benchmark, bench_loop, bench, record_comparison,
                                bench_target, bench_more) -> None:
    value = pre_keys(1)["1"] if kind == "pre-key" else session_record()
    key_id = "1" if kind == "pre-key" else "5511999999999.0"
    run = bench_loop.run_until_complete
    state = run(bench.store.load("co"))
    run(state.keys.set({kind: {key_id: value}}))

    async def ours() -> None:
        got = await state.keys.get(kind, [key_id])
        assert got[key_id]

    async def raw() -> None:
        async with bench.pool.acquire() as conn:
            rows = await conn.fetch(RAW_GET, "co", kind, [key_id])
        assert rows

    # The gate is the single-key point get (a pre-key). A session's ratio is mostly
    # the parse of ~8 KB of JSON, which the undecoded raw fetch never pays: shown, not gated.
    gated = kind == "pre-key"
    target = bench_target("bench-point-get-max-ratio")
    ours_t, base_t, got = paired_calls_until_decided(
        run, ours, raw, calls=POINT_CALLS, bound=target if gated else None, factor=bench_more)

    async def hundred_gets() -> None:
        for _ in range(100):
            await ours()

    benchmark.pedantic(lambda: run(hundred_gets()), rounds=max(3, ROUNDS // 5), iterations=1)
    size = len(codec.dumps(value))
    c = record_comparison(Comparison(
        f"keys.get one {kind} ({size} B)", "p50 latency", "ms", ours_t.percentile(50) * 1e3,
        base_t.percentile(50) * 1e3, higher_is_better=False, target=target,
        rounds=len(got.ratios), paired_ratio=got.value, ratio_ci=got.interval,
        added_rounds=got.added,
        note=f"raw = {bench.raw_pool}; {len(ours_t.seconds)} calls per side, ratio = median of "
             f"per-batch p50 ratios; p99 ours {ours_t.percentile(99) * 1e3:.3f} ms vs raw "
             f"{base_t.percentile(99) * 1e3:.3f} ms; raw returns undecoded JSON text",
        gated=gated))
    benchmark.extra_info.update(ratio=c.ratio)
    assert c.decision != "failed" or not c.gated, c.describe()


@pytest.mark.parametrize("direction", ["encode", "decode"])
def test_codec_8kb_session(direction, benchmark) -> None:
    session = session_record()
    text = codec.dumps(session)
    assert 6000 <= len(text) <= 10000
    if direction == "encode":
        assert benchmark(codec.dumps_for_postgres, session) == text
    else:
        assert benchmark(codec.loads, text) == session
