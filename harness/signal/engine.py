"""The Python side of the signal engine: Baileys' Signal repository, one per company, in Node.

`await SignalEngine.start(target, history, ...)` picks where libsignal runs:
- a `node:` target: inside the target's own sidecar, over the module's own `state.keys`; the
  engine returns the trace of every store call, recorded here (recorder.record_trace);
- any Python target: in a bridge sidecar whose key store calls back into the harness, answered
  by the target through the chaos driver (bridge.py).
Either way every key read and write the workload's cryptography makes goes through the target
and into the history, with digests only.

`op(name, company, **payload)` runs one `signal.*` op (engine.mjs) and returns its result; a
libsignal failure is a result (`{"error": {...}}`), not an exception. It also keeps the time
split the throughput figures report: the op inside Node (`op_ns`), the store calls it made as
Node saw them (`store_ns`), the store calls as Python saw them (bridge only), and the round
trip as Python saw it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.metrics.history import History
from harness.node_target.baileys import install_baileys
from harness.signal.bridge import Bridge
from harness.signal.recorder import Processes, StoreDriver, record_trace

ENGINE_MODULE = Path(__file__).with_name("engine.mjs")  # loaded by the sidecar at signal.init


@dataclass
class EngineTiming:
    """Summed over every op (concurrent ops overlap: these are shares of busy time)."""

    ops: int = 0
    rtt_ns: int = 0  # the op as Python waited for it
    wait_ns: int = 0  # queued in Node.js behind another company's op on the same peer
    op_ns: int = 0  # the op inside Node.js
    store_js_ns: int = 0  # its store calls as Node.js saw them (bridge: with the bridge hop)

    def split(self, store_py_ns: int | None) -> dict[str, Any]:
        """Shares of crypto (Baileys + libsignal in Node), store and bridge in the ops' time.
        `store_py_ns`: the store's own time when Python serves it (bridge), else None."""
        crypto = max(0, self.op_ns - self.store_js_ns)
        transport = max(0, self.rtt_ns - self.op_ns - self.wait_ns)
        if store_py_ns is None:
            store, bridge = self.store_js_ns, transport
        else:
            store = store_py_ns
            bridge = transport + max(0, self.store_js_ns - store_py_ns)
        total = crypto + store + bridge
        share = (lambda part: round(part / total, 3)) if total else (lambda part: None)
        return {"ops": self.ops, "crypto": share(crypto), "store": share(store),
                "bridge": share(bridge), "busy_s": round(total / 1e9, 3),
                "peer_wait_s": round(self.wait_ns / 1e9, 3),
                "mean_op_ms": round(self.rtt_ns / self.ops / 1e6, 2) if self.ops else None}


class SignalEngine:
    """The signal engine over one opened target (its sidecar, or a bridge sidecar)."""

    def __init__(self, target: Any, history: History, processes: Processes,
                 driver: StoreDriver, *, op_timeout_s: float) -> None:
        self.target = target
        self.history = history
        self.processes = processes
        self.driver = driver
        self.op_timeout_s = op_timeout_s
        self.timing = EngineTiming()
        self.bridge: Bridge | None = None
        self.sidecar: Any = None
        self.info: dict[str, Any] = {}
        self._states: dict[str, Any] = {}  # node: targets: keeps each loaded handle alive

    @property
    def in_target_sidecar(self) -> bool:
        return self.bridge is None

    @classmethod
    async def start(cls, target: Any, history: History, processes: Processes, *,
                    op_timeout_s: float, commit_retries: int, commit_delay_ms: int,
                    baileys_root: Path | None = None) -> SignalEngine:
        """Start the engine (install Baileys on first use: BaileysUnavailable if it cannot)."""
        sidecar = getattr(target, "sidecar", None)
        if sidecar is None:  # a Python target: libsignal's store calls come back to us
            engine = await cls.bridged(history, processes, op_timeout_s=op_timeout_s,
                                       commit_retries=commit_retries,
                                       commit_delay_ms=commit_delay_ms,
                                       baileys_root=baileys_root)
            return engine.bind(target)
        root = baileys_root or install_baileys()[0]
        driver = StoreDriver(target, history, op_timeout_s=op_timeout_s)
        engine = cls(target, history, processes, driver, op_timeout_s=op_timeout_s)
        engine.sidecar = sidecar
        await engine._init(root, commit_retries=commit_retries, commit_delay_ms=commit_delay_ms)
        return engine

    @classmethod
    async def bridged(cls, history: History, processes: Processes, *, op_timeout_s: float,
                      commit_retries: int, commit_delay_ms: int,
                      baileys_root: Path | None = None) -> SignalEngine:
        """The engine in a bridge sidecar of its own with Baileys loaded, but no target yet:
        `bind` a Python target before the first op. What a service process has ready before
        it serves (client-crash so starts its successor's ahead of the heal)."""
        root = baileys_root or install_baileys()[0]
        driver = StoreDriver(None, history, op_timeout_s=op_timeout_s)
        engine = cls(None, history, processes, driver, op_timeout_s=op_timeout_s)
        engine.bridge = await Bridge.start(None, driver, processes, call_timeout_s=op_timeout_s)
        engine.sidecar = engine.bridge.sidecar
        try:
            await engine._init(root, commit_retries=commit_retries,
                               commit_delay_ms=commit_delay_ms)
        except BaseException:  # failed or cancelled half-way: no bridge sidecar left behind
            await asyncio.shield(engine.close())
            raise
        return engine

    def bind(self, target: Any) -> SignalEngine:
        """A bridged engine's store calls from now on answered by `target` (Python)."""
        if self.bridge is None:
            raise RuntimeError("only a bridged engine is bound to a target")
        self.target = target
        self.driver = StoreDriver(target, self.history, op_timeout_s=self.op_timeout_s)
        self.bridge.driver = self.driver
        return self

    async def _init(self, root: Path, *, commit_retries: int, commit_delay_ms: int) -> None:
        self.info = await self.sidecar.call(
            "signal.init", timeout_s=60.0, engine=str(ENGINE_MODULE), baileys_dir=str(root),
            record=self.in_target_sidecar,
            commit_retries=commit_retries, commit_delay_ms=commit_delay_ms,
            store_timeout_ms=int(self.op_timeout_s * 1000))

    async def open(self, company: str, jid: str) -> dict[str, Any]:
        """Load the company's auth state through the target and build its repository.
        Returns {"paired": bool}; raises the store's error when loading fails."""
        if self.bridge is None:
            process = self.processes.take(company)
            outcome, state = await self.driver.load(process, company)
            self.processes.give(company, process, outcome)
            if outcome != "ok":
                error = StoreDriver.last_error()
                raise error if error is not None else RuntimeError(f"load of {company} failed")
            self._states[company] = state
            handle = state.handle
        else:
            loaded = await self.sidecar.call("load", company_id=company, company=company,
                                             timeout_s=self.op_timeout_s)
            handle = loaded["handle"]
        result: dict[str, Any] = await self.sidecar.call(
            "signal.open", company_id=company, timeout_s=self.op_timeout_s, handle=handle,
            company=company, jid=jid)
        return result

    async def op(self, name: str, company: str, **payload: Any) -> dict[str, Any]:
        started = time.monotonic_ns()
        result: dict[str, Any] = await self.sidecar.call(
            f"signal.{name}", company_id=company, timeout_s=self.op_timeout_s + 30.0,
            company=company, **payload)
        timing = result.pop("timing", None) or {}
        t = self.timing
        t.ops += 1
        t.rtt_ns += time.monotonic_ns() - started
        t.op_ns += int(timing.get("op_ns") or 0)
        t.wait_ns += int(timing.get("wait_ns") or 0)
        t.store_js_ns += int(timing.get("store_ns") or 0)
        trace = result.pop("trace", None) or []
        if trace:
            record_trace(self.history, self.processes, trace)
        return result

    def time_split(self) -> dict[str, Any]:
        return self.timing.split(None if self.bridge is None else self.driver.store_ns)

    async def close(self) -> None:
        """Stop the bridge sidecar (a node: target's sidecar belongs to the target)."""
        self._states.clear()
        if self.bridge is not None:
            await self.bridge.close()


async def discard_start(starting: asyncio.Future[SignalEngine] | None) -> None:
    """An engine start nobody will use (started ahead, then not needed): cancelled while still
    starting, closed once started; its failure is not ours to report."""
    if starting is None:
        return
    if not starting.done():
        starting.cancel()
        await asyncio.wait([starting])
    if starting.cancelled() or starting.exception() is not None:
        return
    with contextlib.suppress(Exception):
        await starting.result().close()
