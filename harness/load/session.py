"""One load job from a running PostgreSQL and fault proxy: bridge benchmark, scale steps, the
main run, its report section and figures. The same code behind `authstate-harness load` and the
load suite (`run --suite load`), which differ only in who provisioned the servers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.faults.client import ToxiproxyClient
from harness.load import bridge_bench
from harness.load.environment import load_database
from harness.load.hdr import ALL, LatencyRecorder
from harness.load.result import duration_s
from harness.load.runner import LoadOutcome, LoadPlan, run_load
from harness.load.section import build_section, figures, memory
from harness.metrics.figures import Figure

Say = Callable[[str], None]


@dataclass
class LoadJob:
    plan: LoadPlan
    scale: Sequence[int] = ()  # company counts of a scale curve (the plan's own count included)
    bridge_seconds: float | None = 3.0  # per window; None: no bridge benchmark
    bridge_rounds: int = 3
    gated: bool = True


@dataclass
class LoadJobResult:
    section: dict[str, Any]
    figures: list[Figure]
    outcomes: list[LoadOutcome] = field(default_factory=list)


def scale_row(outcome: LoadOutcome) -> dict[str, Any]:
    recorder = LatencyRecorder.from_wire(outcome.result["recorder"])
    seconds = duration_s(outcome.result)
    ok, fail = recorder.count(ALL)
    steady = [p for p in recorder.phases() if p != "setup"]
    hist = recorder.merged("raw", ALL, steady)
    return {"companies": outcome.plan.companies,
            "ops_per_s": round((ok + fail) / seconds, 1) if seconds else None,
            "p99_ms": (round(hist.get_value_at_percentile(99.0) / 1000.0, 3)
                       if hist.get_total_count() else None),
            "failures": fail,
            "rss_mb_per_company": memory(outcome.result,
                                         outcome.plan.companies)["rss_mb_per_company"]}


def marginal_memory(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-company memory as the slope from the smallest step: a process's fixed cost
    (interpreter, imports, the pool) divided by 10 companies says nothing about the 1000th."""
    ordered = sorted(rows, key=lambda r: r["companies"])
    base = ordered[0]
    for row in ordered:
        row["rss_growth_mb"] = round(row["rss_mb_per_company"] * row["companies"], 1)
        extra = row["companies"] - base["companies"]
        row["rss_mb_marginal_per_company"] = (
            round((row["rss_growth_mb"] - base["rss_growth_mb"]) / extra, 3) if extra else None)
    return rows


def run_job(job: LoadJob, server_admin_dsn: str, toxiproxy: ToxiproxyClient | None,
            out_dir: Path, *, on_live: Callable[[dict[str, Any]], None] | None = None,
            say: Say = lambda _line: None) -> LoadJobResult:
    plan = job.plan
    bridge = None
    if job.bridge_seconds:
        with load_database(server_admin_dsn, None) as env:
            bridge = bridge_bench.measure(env.dsn, target=plan.target,
                                          companies=min(plan.companies, 100),
                                          seconds=job.bridge_seconds, rounds=job.bridge_rounds,
                                          say=say)
        say(f"bridge ratio {bridge.get('ratio')} (bridge {bridge.get('bridge_messages_per_s')}"
            f" vs pure {bridge.get('pure_messages_per_s')} messages/s)"
            + (f": {bridge['error']}" if bridge.get("error") else ""))
    steps = list(dict.fromkeys(job.scale)) or [plan.companies]
    main_count = plan.companies if plan.companies in steps else steps[0]
    outcomes: list[LoadOutcome] = []
    main: LoadOutcome | None = None
    for count in steps:
        # the open model's rate is per company: a scale step keeps each company's pace
        step_plan = replace(plan, companies=count,
                            rate=plan.rate * count / plan.companies if plan.rate else None)
        is_main = count == main_count
        if not is_main:  # scale steps: no fault, no checker, same duration
            step_plan = replace(step_plan, fault=None, history=False)
        step_dir = out_dir if len(steps) == 1 else out_dir / f"load-{count}"
        say(f"load: {plan.profile}, {count} companies, {plan.duration_s:g} s"
            + (f", fault {plan.fault.spec}" if plan.fault and is_main else ""))
        with load_database(server_admin_dsn, toxiproxy,
                           own_role=bool(step_plan.fault and step_plan.fault.needs_role)) as env:
            outcome = run_load(step_plan, env, step_dir, on_live=on_live, say=say)
        outcomes.append(outcome)
        if is_main:
            main = outcome
    assert main is not None
    scale = marginal_memory([scale_row(o) for o in outcomes]) if len(steps) > 1 else None
    section = build_section(main, bridge=bridge, scale=scale)
    if len(steps) > 1:
        section["files"] = {k: f"load-{main_count}/{v}" for k, v in section["files"].items()}
    return LoadJobResult(section, figures(section, gated=job.gated), outcomes)
