"""Bridge benchmark: messages/s through the gevent-asyncio bridge vs a pure asyncio driver.

Same target, same database, same traffic (the steady profile's messages, no think time), same
concurrency (one closed loop per company), same run: the harness runs the two modes one after
the other, alternating, each in a fresh subprocess (the bridge side must be monkey-patched by
gevent, the pure side must not be), and reports bridge / pure. The bridge side is what a Locust
worker does minus Locust's own bookkeeping: greenlets, each submitting one message coroutine at
a time through `AsyncioBridge.call` and waiting for it without blocking the hub.

    python -m harness.load.bridge_bench --mode pure|bridge --dsn DSN [--companies 100]
        [--seconds 5] [--target reference]     (prints one JSON line)
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


async def run_pure(dsn: str, target: str, companies: int, seconds: float, tag: str
                   ) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as cache:
        store = await _open(dsn, target, Path(cache))
        try:
            workload = LoadWorkload(store, DiscardingHistory(), run_tag=tag,
                                    full_pre_key_share=0.0)
            made = await _setup(workload, companies, tag)
            count = 0
            stop_at = time.monotonic() + seconds

            async def loop(c: Any) -> None:
                nonlocal count
                while time.monotonic() < stop_at:
                    await workload.message(c, workload.pick(c, STEADY_MIX))
                    count += 1

            began = time.monotonic()
            await asyncio.gather(*(loop(c) for c in made))
            elapsed = time.monotonic() - began
        finally:
            await store.close()
    return {"mode": "pure", "messages": count, "seconds": elapsed,
            "messages_per_s": count / elapsed}


def run_bridge(dsn: str, target: str, companies: int, seconds: float, tag: str
               ) -> dict[str, Any]:
    from gevent import monkey

    monkey.patch_all()
    import gevent

    from harness.load.bridge import AsyncioBridge

    bridge = AsyncioBridge()
    with tempfile.TemporaryDirectory() as cache:
        store = bridge.call(_open(dsn, target, Path(cache)))
        try:
            workload = LoadWorkload(store, DiscardingHistory(), run_tag=tag,
                                    full_pre_key_share=0.0)
            made = bridge.call(_setup(workload, companies, tag))
            count = 0
            stop_at = time.monotonic() + seconds

            def loop(c: Any) -> None:
                nonlocal count
                while time.monotonic() < stop_at:
                    bridge.call(workload.message(c, workload.pick(c, STEADY_MIX)))
                    count += 1

            began = time.monotonic()
            gevent.joinall([gevent.spawn(loop, c) for c in made])
            elapsed = time.monotonic() - began
        finally:
            bridge.call(store.close())
            bridge.close()
    return {"mode": "bridge", "messages": count, "seconds": elapsed,
            "messages_per_s": count / elapsed}


def measure(dsn: str, *, target: str = "reference", companies: int = 100,
            seconds: float = 5.0, rounds: int = 1,
            say: Callable[[str], None] = lambda _line: None) -> dict[str, Any]:
    """Alternate pure / bridge subprocess runs `rounds` times; ratio of the summed rates."""
    runs: list[dict[str, Any]] = []
    for r in range(rounds):
        for mode in ("pure", "bridge"):
            say(f"bridge benchmark: {mode} asyncio, {companies} companies, {seconds:g} s")
            cmd = [sys.executable, "-m", "harness.load.bridge_bench", "--mode", mode,
                   "--dsn", dsn, "--target", target, "--companies", str(companies),
                   "--seconds", f"{seconds:g}", "--tag", f"bb{r}{mode[0]}{int(time.time())}"]
            done = subprocess.run(cmd, capture_output=True, text=True,
                                  timeout=seconds + 180, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                return {"ratio": None, "runs": runs,
                        "error": f"{mode} run failed (exit {done.returncode}): "
                                 f"{done.stderr.strip()[-400:]}"}
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    pure = sum(r["messages"] for r in runs if r["mode"] == "pure")
    pure_s = sum(r["seconds"] for r in runs if r["mode"] == "pure")
    bridged = sum(r["messages"] for r in runs if r["mode"] == "bridge")
    bridged_s = sum(r["seconds"] for r in runs if r["mode"] == "bridge")
    pure_rate, bridge_rate = pure / pure_s, bridged / bridged_s
    return {"ratio": round(bridge_rate / pure_rate, 3) if pure_rate else None,
            "pure_messages_per_s": round(pure_rate, 1),
            "bridge_messages_per_s": round(bridge_rate, 1), "companies": companies,
            "seconds": seconds, "rounds": rounds, "runs": runs}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.load.bridge_bench")
    parser.add_argument("--mode", choices=("pure", "bridge"), required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--target", default="reference")
    parser.add_argument("--companies", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--tag", default=f"bb{int(time.time())}")
    args = parser.parse_args(argv)
    if args.mode == "pure":
        try:
            import uvloop

            runner: Any = uvloop.run
        except ImportError:
            runner = asyncio.run
        out = runner(run_pure(args.dsn, args.target, args.companies, args.seconds, args.tag))
    else:
        out = run_bridge(args.dsn, args.target, args.companies, args.seconds, args.tag)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
