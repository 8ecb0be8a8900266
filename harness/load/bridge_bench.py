"""Bridge benchmark: messages/s through the gevent-asyncio bridge vs a pure asyncio driver.

Same process, same open store and pool, same companies (set up once), same traffic (the steady
profile's messages, no think time), same concurrency (one closed loop per company), one after
the other in alternating windows (pure, bridge, pure, bridge, ...): what differs is only how a
message reaches the loop. Pure: one coroutine per company looping on the asyncio loop. Bridge:
one greenlet per company submitting each message through `AsyncioBridge.call` and waiting for
it without blocking the hub -- what a Locust worker does, minus Locust's own bookkeeping.
Interleaving in one process cancels the machine's drift (other work on a shared 2-core box
moved separate-process runs by +-40 %). It runs in a subprocess: gevent's monkey-patching must
not enter the caller (pytest).

    python -m harness.load.bridge_bench --dsn DSN [--companies 100] [--seconds 3]
        [--rounds 2] [--target reference]      (prints one JSON line)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.load.profiles import STEADY_MIX
from harness.load.traffic import DiscardingHistory, LoadWorkload

SETUP_CONCURRENCY = 16
WARMUP_S = 1.0


async def _open(dsn: str, target: str, cache: Path) -> Any:
    from harness.targets import resolve_target

    return await resolve_target(target).open(dsn, cache_dir=cache)


async def _setup(workload: LoadWorkload, companies: int, tag: str) -> list[Any]:
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)
    made = [workload.add_company(f"{tag}-{i}") for i in range(companies)]

    async def one(c: Any) -> None:
        async with gate:
            await workload.setup_company(c)

    await asyncio.gather(*(one(c) for c in made))
    return made


async def _pure_window(workload: LoadWorkload, made: list[Any], seconds: float
                       ) -> tuple[int, float]:
    count = 0
    stop_at = time.monotonic() + seconds

    async def loop(c: Any) -> None:
        nonlocal count
        while time.monotonic() < stop_at:
            await workload.message(c, workload.pick(c, STEADY_MIX))
            count += 1

    began = time.monotonic()
    await asyncio.gather(*(loop(c) for c in made))
    return count, time.monotonic() - began


def run_interleaved(dsn: str, target: str, companies: int, seconds: float, rounds: int,
                    tag: str) -> dict[str, Any]:
    """Monkey-patch this process with gevent, then alternate pure / bridge windows."""
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from harness.load.bridge import AsyncioBridge

    bridge = AsyncioBridge()
    windows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as cache:
        store = bridge.call(_open(dsn, target, Path(cache)))
        try:
            workload = LoadWorkload(store, DiscardingHistory(), run_tag=tag,
                                    full_pre_key_share=0.0)
            made = bridge.call(_setup(workload, companies, tag))
            bridge.call(_pure_window(workload, made, WARMUP_S))  # setup's tail: not measured
            for _ in range(rounds):
                cpu = time.process_time()
                count, elapsed = bridge.call(_pure_window(workload, made, seconds))
                windows.append({"mode": "pure", "messages": count, "seconds": elapsed,
                                "cpu_s": time.process_time() - cpu})
                count = 0
                stop_at = time.monotonic() + seconds

                def loop(c: Any, stop_at: float = stop_at) -> None:
                    nonlocal count
                    while time.monotonic() < stop_at:
                        bridge.call(workload.message(c, workload.pick(c, STEADY_MIX)))
                        count += 1

                began, cpu = time.monotonic(), time.process_time()
                gevent.joinall([gevent.spawn(loop, c) for c in made])
                windows.append({"mode": "bridge", "messages": count,
                                "seconds": time.monotonic() - began,
                                "cpu_s": time.process_time() - cpu})
        finally:
            bridge.call(store.close())
            bridge.close()
    return summarize(windows, companies, seconds, rounds)


def summarize(windows: list[dict[str, Any]], companies: int, seconds: float, rounds: int
              ) -> dict[str, Any]:
    def rate(mode: str) -> float:
        n = sum(w["messages"] for w in windows if w["mode"] == mode)
        s = sum(w["seconds"] for w in windows if w["mode"] == mode)
        return n / s if s else 0.0

    pure, bridged = rate("pure"), rate("bridge")
    pures = [w for w in windows if w["mode"] == "pure"]
    bridges = [w for w in windows if w["mode"] == "bridge"]
    rounds_ratios = [round((b["messages"] / b["seconds"]) / (p["messages"] / p["seconds"]), 3)
                     for p, b in zip(pures, bridges, strict=False)
                     if p["messages"] and p["seconds"] and b["seconds"]]
    return {"ratio": round(bridged / pure, 3) if pure else None,
            "round_ratios": rounds_ratios,
            "pure_messages_per_s": round(pure, 1), "bridge_messages_per_s": round(bridged, 1),
            "companies": companies, "seconds": seconds, "rounds": rounds, "runs": windows}


def measure(dsn: str, *, target: str = "reference", companies: int = 100,
            seconds: float = 3.0, rounds: int = 3,
            say: Callable[[str], None] = lambda _line: None) -> dict[str, Any]:
    """Run the interleaved benchmark in a subprocess; its summary (ratio = bridge / pure)."""
    say(f"bridge benchmark: {companies} companies, {rounds} x ({seconds:g} s pure asyncio + "
        f"{seconds:g} s through the bridge)")
    cmd = [sys.executable, "-m", "harness.load.bridge_bench", "--dsn", dsn, "--target", target,
           "--companies", str(companies), "--seconds", f"{seconds:g}", "--rounds", str(rounds),
           "--tag", f"bb{int(time.time())}"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                              timeout=2 * rounds * seconds + 180)
    except subprocess.TimeoutExpired:
        return {"ratio": None, "error": "the bridge benchmark did not finish in time"}
    if done.returncode != 0:
        return {"ratio": None, "error": f"bridge benchmark failed (exit {done.returncode}): "
                                        f"{done.stderr.strip()[-400:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.load.bridge_bench")
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--target", default="reference")
    parser.add_argument("--companies", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tag", default=f"bb{int(time.time())}")
    args = parser.parse_args(argv)
    out = run_interleaved(args.dsn, args.target, args.companies, args.seconds, args.rounds,
                          args.tag)
    print(json.dumps(out), flush=True)
    # Everything is closed and the result is out. Exit now: the teardown of a gevent-patched
    # interpreter sometimes hangs joining the threads asyncio.to_thread started (seen 1 in 2
    # runs), and the caller would wait out its timeout and report the ratio as not measured.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
