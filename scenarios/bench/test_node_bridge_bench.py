"""What the Node.js bridge costs: the example store through the bridge vs the same module called
in-process by a Node driver, in the same run, on the same database.

Sides alternate round by round (`ROUNDS` rounds, the first `WARMUP` discarded), each with its
own Node process and connection pool on the same fresh database, the same company and the same
keys. Bridge side: Python's `state.keys.get/set` through the sidecar (Python encodes the values,
JSON lines over pipes, the sidecar decodes them and calls the module). In-process side:
harness/node_target/inprocess_driver.mjs calls `state.keys.get/set` itself, timing each call
with process.hrtime. Figures (ungated: the bridge is the harness's own cost, not the store's):

- point read (pre-key): p50 bridge / p50 in-process, with both p50s and the difference in
  the notes;
- bulk set (100 pre-keys, Baileys' commit of a message batch): median ratio;
- the bridge's fixed cost: p50 of a `ping` round trip (Python -> sidecar -> Python, no module
  code), the floor under every bridged call.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import harness.node_target
from harness.metrics.figures import Figure
from harness.node_target.errors import NodeUnavailable
from harness.node_target.spec import database_env, node_binary, resolve
from harness.targets import resolve_target

pytestmark = [pytest.mark.bench, pytest.mark.timeout(600)]

EXAMPLE = "node:examples/node-store/index.js"
DRIVER = Path(harness.node_target.__file__).with_name("inprocess_driver.mjs")  # clone or wheel
ROUNDS, WARMUP = 7, 2
POINT_READS = int(os.environ.get("AUTHSTATE_BENCH_POINT_READS", "200"))
BULK_SETS, BULK_KEYS = 3, 100
COMPANY = "bench-node"


class InProcess:
    """The in-process Node driver: one command, one reply."""

    def __init__(self, module: Path, export: str, dsn: str, deps_dir: Path | None) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(database_env(dsn))
        if deps_dir is not None:
            env["AUTHSTATE_NODE_DEPS"] = str(deps_dir)
        self.proc = subprocess.Popen([node_binary(), str(DRIVER), str(module), export],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env, cwd=module.parent)

    def __call__(self, op: str, **args: object) -> object:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline() or '{"error": "driver exited"}')
        if "error" in reply:
            raise AssertionError(f"in-process driver: {reply['error']}")
        return reply["ok"]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _timed(n: int, call: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter_ns()
        await call(i)  # type: ignore[misc]
        out.append((time.perf_counter_ns() - t) / 1000)
    return out


def _pre_keys(round_: int) -> dict[str, dict[str, object]]:
    return {str(i + 1): {"public": os.urandom(32), "private": os.urandom(32), "round": round_}
            for i in range(BULK_KEYS)}


async def test_node_bridge_overhead(pg_dsn: str, tmp_path: Path,
                                    record_figure: Callable[[Figure], Figure]) -> None:
    try:
        spec = resolve_target(EXAMPLE)
        _name, _description, module, export, deps_dir = resolve(EXAMPLE)
    except NodeUnavailable as exc:
        pytest.skip(f"{exc.message}. To enable: {exc.hint}")
    target = await spec.open(pg_dsn, cache_dir=tmp_path)
    driver = InProcess(module, export, pg_dsn, deps_dir)
    try:
        state = await target.load(COMPANY)
        await state.keys.set({"pre-key": _pre_keys(0)})
        driver("load", company=COMPANY)
        sidecar = target.sidecar  # type: ignore[attr-defined]
        bridge_get: list[float] = []
        local_get: list[float] = []
        bridge_set: list[float] = []
        local_set: list[float] = []
        ping: list[float] = []
        for round_ in range(ROUNDS):
            got_b = await _timed(POINT_READS, lambda _: state.keys.get("pre-key", ["7"]))
            got_l = driver("get", type="pre-key", ids=["7"], n=POINT_READS)
            base = round_ * 10
            set_b = await _timed(BULK_SETS, lambda i, base=base: state.keys.set(
                {"pre-key": _pre_keys(base + i)}))
            set_l = driver("set", type="pre-key", count=BULK_KEYS, n=BULK_SETS)
            pinged = await _timed(POINT_READS, lambda _: sidecar.call("ping"))
            if round_ >= WARMUP:
                bridge_get += got_b
                local_get += got_l  # type: ignore[arg-type]
                bridge_set += set_b
                local_set += set_l  # type: ignore[arg-type]
                ping += pinged
            await asyncio.sleep(0)
    finally:
        driver.close()
        await target.close()

    get_b, get_l = statistics.median(bridge_get), statistics.median(local_get)
    set_b, set_l = statistics.median(bridge_set), statistics.median(local_set)
    fixed = statistics.median(ping)
    context = {"rounds": ROUNDS - WARMUP, "point_reads_per_round": POINT_READS,
               "bulk_sets_per_round": BULK_SETS, "bulk_keys": BULK_KEYS,
               "bridge_get_p50_us": round(get_b, 1), "inprocess_get_p50_us": round(get_l, 1),
               "bridge_set_p50_ms": round(set_b / 1000, 3),
               "inprocess_set_p50_ms": round(set_l / 1000, 3),
               "ping_p50_us": round(fixed, 1)}
    record_figure(Figure(
        suite="bench", name="node bridge point read (pre-key) bridge/in-process",
        value=round(get_b / get_l, 3), unit="x", better="lower", gated=False,
        notes=f"p50 {get_b:.0f} µs through the bridge vs {get_l:.0f} µs in-process: "
              f"+{get_b - get_l:.0f} µs per call", context=context))
    record_figure(Figure(
        suite="bench", name=f"node bridge bulk set ({BULK_KEYS} pre-keys) bridge/in-process",
        value=round(set_b / set_l, 3), unit="x", better="lower", gated=False,
        notes=f"p50 {set_b / 1000:.2f} ms through the bridge vs {set_l / 1000:.2f} ms "
              f"in-process", context=context))
    record_figure(Figure(
        suite="bench", name="node bridge fixed cost (ping round trip p50)",
        value=round(fixed, 1), unit="µs", better="lower", gated=False,
        notes="Python -> sidecar -> Python with no module code: the floor under every bridged "
              "call", context=context))
    assert get_b > 0 and get_l > 0 and fixed > 0
