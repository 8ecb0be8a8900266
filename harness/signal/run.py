"""One signal scenario, start to finish: the standalone `--suite signal` runs this.

    open the target through the fault proxy -> setup (pair, first messages) -> traffic ->
    warmup -> sever (PostgreSQL unreachable through the proxy) for outage_s -> recovery ->
    stop (in-flight messages settle) -> flush, close -> new pod (a fresh target instance, a
    fresh engine, only PostgreSQL) -> flush, close -> final read straight from PostgreSQL ->
    checker over every key read and write -> attribution of decrypt failures -> section.

The chaos runner will call the pieces itself (SignalWorkload, new_pod_check, attribute,
build_section) inside its own repetition; this module is the same sequence for one fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.faults.helpers import Faults
from harness.metrics.checker import CheckResult, check
from harness.metrics.figures import Figure
from harness.metrics.history import History
from harness.observe.final_read import final_read
from harness.signal.attribution import attribute
from harness.signal.newpod import NewPodResult, new_pod_check
from harness.signal.profiles import SignalParams
from harness.signal.section import build_section, figures_of
from harness.signal.workload import SignalWorkload
from harness.targets import settle

log = logging.getLogger("harness.signal")
CLOSE_TIMEOUT_S = 30.0


@dataclass
class SignalEnv:
    proxy_dsn: str  # the target connects here (through the fault proxy)
    admin_dsn: str  # the final read (straight to PostgreSQL)
    faults: Faults
    work_dir: Path


@dataclass
class SignalOutcome:
    section: dict[str, Any]
    figures: list[Figure]
    workload: SignalWorkload
    check: CheckResult
    new_pod: NewPodResult
    history: History
    notes: list[str] = field(default_factory=list)


async def _close(target: Any, notes: list[str], target_errors: list[str]) -> None:
    """Close, bounded; a close that hangs or throws is the target's failure (reported, the
    verdict fails), not the harness's: the run's results stand."""
    try:
        await asyncio.wait_for(target.close(), CLOSE_TIMEOUT_S)
    except TimeoutError:
        target_errors.append(f"close() did not finish within {CLOSE_TIMEOUT_S:g} s")
    except Exception as exc:
        failure = getattr(target, "failure", None)
        if callable(failure) and failure() is not None:
            raise  # the sidecar crashed: a harness error naming the cause, as in chaos
        target_errors.append(f"close() failed: {type(exc).__name__}: {exc}"[:300])
    if target_errors:
        notes.append(target_errors[-1])


def _cache(work_dir: Path, name: str) -> Path:
    path = work_dir / name
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


async def run_signal(scenario: str, params: SignalParams, target_spec: Any, env: SignalEnv,
                     *, contrast: bool = False,
                     say: Any = lambda line: log.info("%s", line)) -> SignalOutcome:
    label = f"signal {scenario} [{target_spec.name}]"
    notes: list[str] = []
    target_errors: list[str] = []
    history = History()
    companies = [f"co{i:03d}" for i in range(params.companies)]
    started = time.monotonic()
    windows: list[tuple[int, int]] = []
    target = await target_spec.open(env.proxy_dsn, cache_dir=_cache(env.work_dir, "pod-1"))
    workload = SignalWorkload(target, companies, history, config=params.workload,
                              run_tag="m")
    try:
        await workload.setup()
        say(f"{label}: setup {workload.setup_s:.1f} s ({len(companies)} companies, "
            f"{len(workload.topology.direct)} 1:1 conversations, "
            f"{len(workload.topology.groups)} groups); warmup {params.warmup_s:g} s")
        workload.start()
        await asyncio.sleep(params.warmup_s)
        if scenario == "sever":
            say(f"{label}: PostgreSQL severed for {params.outage_s:g} s")
            fault = env.faults.sever()
            t0 = time.monotonic_ns()
            history.nemesis("sever", "start", at_ns=t0)
            try:
                await fault.ainject()
                await asyncio.sleep(params.outage_s)
            finally:
                await asyncio.shield(fault.aclear())
                t1 = time.monotonic_ns()
                history.nemesis("sever", "stop", at_ns=t1)
                windows.append((t0, t1))
            say(f"{label}: recover {params.recovery_s:g} s (traffic goes on)")
            await asyncio.sleep(params.recovery_s)
        else:
            await asyncio.sleep(params.outage_s + params.recovery_s)
        await workload.stop()
        stats_js = await _engine_stats(workload)
        flushed = await settle(target, within_s=params.settle_s)
        if not flushed:
            notes.append(f"flush({params.settle_s:g}) did not drain the target before the new pod")
    finally:
        await workload.close()
        await _close(target, notes, target_errors)
    say(f"{label}: new pod (fresh {target_spec.name} instance, empty cache, only PostgreSQL)")
    pod = await target_spec.open(env.proxy_dsn, cache_dir=_cache(env.work_dir, "pod-2"))
    try:
        new_pod = await new_pod_check(
            pod, workload.topology, history, workload.processes,
            op_timeout_s=params.workload.op_timeout_s,
            commit_retries=params.workload.commit_retries,
            commit_delay_ms=params.workload.commit_delay_ms)
        with contextlib.suppress(Exception):
            await settle(pod, within_s=params.settle_s)
    finally:
        await _close(pod, notes, target_errors)
    final = await final_read(env.admin_dsn, companies)
    result = check(history, final.final, final_meta=final.final_meta, max_examples=100_000)
    attribution = attribute([*workload.tally.failures, *new_pod.decrypt_failures], result,
                            history)
    section = build_section(
        scenario=scenario, params=params, target=target_spec.name, contrast=contrast,
        workload=workload, new_pod=new_pod, check=result, attribution=attribution,
        history=history, windows=windows, engine_stats=stats_js, notes=notes,
        target_errors=target_errors, duration_s=time.monotonic() - started)
    figures = figures_of(section)
    return SignalOutcome(section, figures, workload, result, new_pod, history, notes)


async def _engine_stats(workload: SignalWorkload) -> dict[str, Any]:
    engine = workload.engine
    if engine is None:
        return {}
    try:
        stats: dict[str, Any] = await engine.sidecar.call("signal.stats", timeout_s=10.0)
        return stats
    except Exception as exc:  # diagnostics only
        return {"error": f"{type(exc).__name__}: {exc}"[:200]}
