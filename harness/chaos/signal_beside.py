"""Real Signal conversations beside a chaos scenario's traffic: the verdict in the users' words.

The Baileys-shaped workload measures writes; this runs real conversations (harness.signal:
Baileys' own Signal repository, its keys served by the target under test) on companies of
their own through the same target, across the same fault, and asks afterwards: did every
message decrypt, did any session need re-establishing, and does a new pod (a fresh instance,
empty cache, only PostgreSQL) carry every conversation on? Failures are attributed to the
checker's anomalies on the keys involved (one history holds both workloads' calls).

Used by the steady-traffic scenarios (inject / hold / clear). client-crash carries its own
(harness/chaos/crash_signal.py: the conversations live in the child it kills and go on in the
successor; the runner asks either for `SignalConversations`). The other shapes, the disk
scenarios (power-loss, power-loss-torn, power-loss-reorder, disk-full, disk-error,
disk-error-fsync, slow-disk) and the client faults cancel, deploy-overlap and
restart-degraded, do not carry Signal conversations.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from harness.metrics.checker import CheckResult
from harness.metrics.history import History
from harness.metrics.windows import Window
from harness.signal.attribution import attribute
from harness.signal.engine import SignalEngine, discard_start
from harness.signal.newpod import NewPodResult, new_pod_check
from harness.signal.profiles import SignalParams, signal_params
from harness.signal.recorder import Processes
from harness.signal.section import build_section
from harness.signal.topology import Topology
from harness.signal.workload import SignalConfig, SignalWorkload

log = logging.getLogger("harness.chaos")

PROCESS_BASE = 2_000_000  # Jepsen process ids of the signal workers: never the others'
CLOSE_TIMEOUT_S = 30.0


# Companies in conversation beside each steady chaos scenario, per chaos profile. Off in smoke
# (a plain pytest / `harness test`: tests/chaos/test_signal_beside.py covers it there): a
# conversation's set-up is real Signal cryptography in pure JavaScript, ~1 s per company on 2
# cores, paid again by every repetition. The standalone `--suite signal --profile ci` has 100.
CHAOS_SIGNAL_COMPANIES: dict[str, int] = {"quick": 8, "ci": 12, "predeploy": 12,
                                          "thorough": 24}


def chaos_signal_params(profile: str, **workload: Any) -> SignalParams | None:
    """The signal conversations a chaos profile runs beside its faults (None: none)."""
    companies = CHAOS_SIGNAL_COMPANIES.get(profile)
    if not companies:
        return None
    params = signal_params("smoke", companies=companies)
    return replace(params, workload=replace(params.workload, **workload)) if workload \
        else params


def signal_companies(count: int) -> list[str]:
    return [f"sig{i:03d}" for i in range(count)]


class SignalBeside:
    """One repetition's signal workload, on the scenario's opened target."""

    def __init__(self, target: Any, params: SignalParams, history: History, *,
                 run_tag: str) -> None:
        self.params = params
        self.companies = signal_companies(params.companies)
        self.workload = SignalWorkload(target, self.companies, history,
                                       config=params.workload, run_tag=run_tag,
                                       process_base=PROCESS_BASE)
        self.new_pod: NewPodResult | None = None
        self.target_errors: list[str] = []
        self.started = time.monotonic()
        self._pod_engine: asyncio.Future[SignalEngine] | None = None

    async def setup(self) -> None:
        """Pair the companies and open every conversation (raises SignalSetupError: the
        target failed on a healthy database)."""
        await self.workload.setup()

    def start(self) -> None:
        self.workload.start()

    async def stop(self) -> None:
        """No new message; those in flight settle (Baileys' commit retries included)."""
        await self.workload.stop()

    async def close(self) -> None:
        """Stop the engine (and its bridge sidecar for a Python target), and a new pod's
        engine that was started and never used."""
        await self.workload.close()
        pending, self._pod_engine = self._pod_engine, None
        await discard_start(pending)

    def prepare_new_pod(self) -> None:
        """Start the new pod's engine now, while the old instance settles and closes: a
        fresh Node.js process with Baileys loaded (~0.7 s on 2 cores) that serves no store
        until the new pod binds it. Python targets only: a `node:` target's engine lives in
        the new pod's own sidecar."""
        if self._pod_engine is not None or getattr(self.workload.target, "sidecar", None):
            return
        c = self.params.workload
        self._pod_engine = asyncio.ensure_future(SignalEngine.bridged(
            self.workload.history, self.workload.processes, op_timeout_s=c.op_timeout_s,
            commit_retries=c.commit_retries, commit_delay_ms=c.commit_delay_ms))

    async def check_new_pod(self, target_spec: Any, dsn: str, cache_dir: Path) -> None:
        """A fresh instance of the target, an empty cache, only PostgreSQL: every
        conversation must go on without a new session."""
        engine = None
        pending, self._pod_engine = self._pod_engine, None
        if pending is not None:
            try:
                engine = await pending
            except Exception as exc:  # the new pod starts its own, as without preparing
                log.warning("signal new pod: the engine started ahead failed: %s", exc)
        self.new_pod = await new_pod(target_spec, dsn, cache_dir, self.workload.topology,
                                     self.workload.history, self.workload.processes,
                                     self.params.workload, self.target_errors, engine=engine)

    def section(self, scenario: str, target: str, *, contrast: bool, check: CheckResult,
                history: History, windows: list[Window]) -> dict[str, Any]:
        """The repetition's `signal` item (harness.signal.section)."""
        new_pod = self.new_pod if self.new_pod is not None else NewPodResult(
            error="the new pod check did not run")
        attribution = attribute([*self.workload.tally.failures, *new_pod.decrypt_failures],
                                check, history)
        spans = [(w.injected_ns, w.cleared_ns if w.cleared_ns is not None else w.injected_ns)
                 for w in windows]
        return build_section(
            scenario=scenario, params=self.params, target=target, contrast=contrast,
            workload=self.workload, new_pod=new_pod, check=check, attribution=attribution,
            history=history, windows=spans, engine_stats={}, notes=[],
            target_errors=self.target_errors, duration_s=time.monotonic() - self.started)


class SignalConversations(Protocol):
    """What the scenario runner asks of a repetition's Signal conversations: SignalBeside
    beside steady traffic, harness.chaos.crash_signal.CrashSignal across a client-crash."""

    companies: list[str]

    async def check_new_pod(self, target_spec: Any, dsn: str,
                            cache_dir: Path) -> History | None:
        """The new pod; a History when it recorded apart (to merge into the checked one)."""

    def section(self, scenario: str, target: str, *, contrast: bool, check: CheckResult,
                history: History, windows: list[Window]) -> dict[str, Any]: ...


async def new_pod(target_spec: Any, dsn: str, cache_dir: Path, topology: Topology,
                  history: History, processes: Processes, config: SignalConfig,
                  target_errors: list[str], engine: SignalEngine | None = None
                  ) -> NewPodResult:
    """The new pod check (harness.signal.newpod) on a fresh instance of the target opened on
    `cache_dir` (created empty), closed afterwards with a bound; a close that hangs or throws
    goes to `target_errors`. `engine`: one started ahead (SignalEngine.bridged), or None."""
    try:
        await asyncio.to_thread(cache_dir.mkdir, mode=0o700, parents=True, exist_ok=True)
        pod = await target_spec.open(dsn, cache_dir=cache_dir)
    except BaseException:
        if engine is not None:
            await asyncio.shield(engine.close())
        raise
    try:
        return await new_pod_check(pod, topology, history, processes,
                                   op_timeout_s=config.op_timeout_s,
                                   commit_retries=config.commit_retries,
                                   commit_delay_ms=config.commit_delay_ms, engine=engine)
    finally:
        try:
            await asyncio.wait_for(pod.close(), CLOSE_TIMEOUT_S)
        except TimeoutError:
            target_errors.append(f"the new pod's close() did not finish within "
                                 f"{CLOSE_TIMEOUT_S:g} s")
        except Exception as exc:
            target_errors.append(f"the new pod's close() failed: "
                                 f"{type(exc).__name__}: {exc}"[:300])


def merge_items(items: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The scenario's `signal` over its repetitions: counts summed, errors merged, the new pod
    ok only if it was ok every time, the verdict the worst; each repetition's item kept."""
    if not items:
        return None
    counts = ("messages", "deliveries", "decrypted", "undecryptable_total", "retries",
              "reestablished", "lost", "undecryptable_with_new_pod")
    merged: dict[str, Any] = {k: sum(int(i.get(k) or 0) for i in items) for k in counts}
    undecryptable: dict[str, int] = {}
    for item in items:
        for error, n in (item.get("undecryptable") or {}).items():
            undecryptable[error] = undecryptable.get(error, 0) + int(n)
    crashed = [i for i in items if "successor_ok" in i]  # across a client-crash
    if crashed:
        merged["successor_ok"] = all(i.get("successor_ok") for i in crashed)
        merged["in_flight_at_kill"] = sum(int(i.get("in_flight_at_kill") or 0) for i in crashed)
    order = {"passed": 0, "inconclusive": 1, "failed": 2}
    verdict = max((i.get("verdict", "failed") for i in items), key=lambda v: order.get(v, 2))
    first = items[0]
    return {**merged, "undecryptable": undecryptable,
            "new_pod_ok": all(i.get("new_pod_ok") for i in items), "verdict": verdict,
            "name": first.get("name"), "target": first.get("target"),
            "profile": first.get("profile"), "contrast": first.get("contrast"),
            "gated": first.get("gated"), "companies": first.get("companies"),
            "conversations": first.get("conversations"),
            "attribution": first.get("attribution"), "timeline": first.get("timeline"),
            "throughput": first.get("throughput"), "repetitions": items}


async def close_quietly(beside: SignalBeside | None) -> None:
    if beside is not None:
        with contextlib.suppress(Exception):
            await beside.close()
