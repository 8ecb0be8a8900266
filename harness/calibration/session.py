"""Run the calibration: N x (one A run, then one B run per knob), each a real `run` in its own
process, then the rates (rates.py) into calibration.json and calibration.md.

A and B alternate so a machine that gets busier or quieter over the hours affects both arms
alike. Every run uses the calibration wrapper target (`harness.calibration.slowed`); A runs
with no knob set, B runs with one knob each and only the suite that knob shows up in (replay:
the journal replay benchmark; rto: the sever chaos scenario; p99: the load suite), compared
with the A run of the same iteration on the rows both have. A run that errors (exit 2) is
recorded and the calibration goes on; Ctrl-C stops it after writing what was measured.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.calibration import rates
from harness.calibration.knobs import DEFAULT_SLOWDOWN, ENV, WHAT, Knobs
from harness.calibration.slowed import INNER_ENV
from harness.report.stored import read_report
from harness.report.writer import atomic_write

WRAPPER = "harness.calibration.slowed:open_store"
REPLAY_TARGET_ENV = "AUTHSTATE_BENCH_REPLAY_TARGET"
# What each knob's B run selects: the suite the knob shows up in, and narrower filters.
KNOB_RUN: dict[str, tuple[str, list[str]]] = {
    "replay": ("bench", ["--suite", "bench", "--pytest-args", "-k journal_replay"]),
    "rto": ("chaos", ["--suite", "chaos", "--scenario", "sever"]),
    "p99": ("load", ["--suite", "load"]),
}
DEFAULT_SUITES = ("bench", "chaos", "load")


@dataclass
class Plan:
    runs: int
    out_dir: Path
    profile: str = "quick"
    suites: Sequence[str] = DEFAULT_SUITES
    scenarios: Sequence[str] = ()
    pytest_args: str | None = None
    knobs: Sequence[str] = tuple(DEFAULT_SLOWDOWN)
    slowdown: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SLOWDOWN))
    inner: str = "resilient"
    extra_env: dict[str, str] = field(default_factory=dict)
    dsn: str | None = None  # an existing PostgreSQL for every run (passed as AUTHSTATE_DSN)
    gates: Sequence[str] = ()  # --gate NAME=VALUE for every run (gates and judging settings)

    def common(self, out: Path) -> list[str]:
        return ["run", "--plain", "--profile", self.profile, "--out", str(out), "--target",
                WRAPPER, *[a for g in self.gates for a in ("--gate", g)]]

    def active_knobs(self) -> list[str]:
        """Knobs whose suite the A runs include (a B run is compared with an A run)."""
        return [k for k in self.knobs if KNOB_RUN[k][0] in self.suites]

    def a_argv(self, out: Path) -> list[str]:
        argv = self.common(out)
        argv += [a for s in self.suites for a in ("--suite", s)]
        argv += [a for s in self.scenarios for a in ("--scenario", s)]
        return argv + (["--pytest-args", self.pytest_args] if self.pytest_args else [])

    def b_argv(self, knob: str, out: Path) -> list[str]:
        return [*self.common(out), *KNOB_RUN[knob][1]]

    def env(self, knobs: Knobs) -> dict[str, str]:
        env = {**os.environ, **self.extra_env, REPLAY_TARGET_ENV: WRAPPER,
               INNER_ENV: self.inner, ENV: knobs.to_env()}
        if self.dsn:
            env["AUTHSTATE_DSN"] = self.dsn  # never on a command line others can read
        return env


def harness_command(argv: Sequence[str]) -> list[str]:
    return [sys.executable, "-c", "from harness.cli import main; raise SystemExit(main())",
            *argv]


Say = Callable[[str], None]


def run_one(argv: Sequence[str], env: dict[str, str], out: Path, arm: str, index: int,
            log: Path) -> rates.Run:
    started = time.monotonic()
    with log.open("a", encoding="utf-8") as sink:
        sink.write(f"\n$ authstate-harness {shlex.join(argv)}\n")
        sink.flush()
        done = subprocess.run(harness_command(argv), env=env, stdout=sink,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
    seconds = time.monotonic() - started
    report = None
    try:
        report = read_report(out)
    except Exception:  # no report: a harness error before the run folder existed
        report = None
    return rates.Run(arm, index, out.name, done.returncode, seconds, report)


def summarize(plan: Plan, runs: list[rates.Run]) -> rates.Calibration:
    a_runs = [r for r in runs if r.arm == "A"]
    aa_rates, gate_counts, flagged = rates.aa(a_runs)
    cal = rates.Calibration(aa_rates, gate_counts, flagged)
    by_index = {r.index: r for r in a_runs}
    for knob in plan.active_knobs():
        pairs = [(by_index[r.index], r) for r in runs
                 if r.arm == f"B-{knob}" and r.index in by_index]
        rate, effect = rates.ab(pairs, knob, plan.slowdown[knob])
        cal.rates.append(rate)
        cal.effects[knob] = effect
    return cal


def context_line(plan: Plan, runs: list[rates.Run]) -> str:
    machine = os.cpu_count()
    seconds = sum(r.seconds for r in runs)
    knobs = ", ".join(WHAT[k].format(v=plan.slowdown[k]) for k in plan.active_knobs())
    return (f"{plan.runs} iterations on {machine} cores, profile `{plan.profile}`, suites "
            f"{', '.join(plan.suites)}{' (' + plan.pytest_args + ')' if plan.pytest_args else ''}"
            f"; target: the {plan.inner} store behind the calibration wrapper; A/B knobs: "
            f"{knobs or 'none'}; {len(runs)} runs in {seconds / 60:.0f} min.")


def write(plan: Plan, runs: list[rates.Run], *, interrupted: bool = False) -> rates.Calibration:
    cal = summarize(plan, runs)
    doc = {"schema": "authstate-harness/calibration", "version": 1,
           "plan": {"runs": plan.runs, "profile": plan.profile, "suites": list(plan.suites),
                    "scenarios": list(plan.scenarios), "pytest_args": plan.pytest_args,
                    "knobs": {k: plan.slowdown[k] for k in plan.active_knobs()},
                    "inner": plan.inner},
           "interrupted": interrupted, "runs": [r.summary() for r in runs], **cal.to_dict()}
    atomic_write(plan.out_dir / "calibration.json", json.dumps(doc, indent=1) + "\n")
    title = "authstate-harness calibration" + (" (interrupted)" if interrupted else "")
    atomic_write(plan.out_dir / "calibration.md",
                 rates.markdown(cal, title=title, context=context_line(plan, runs)))
    return cal


def calibrate(plan: Plan, say: Say) -> rates.Calibration:
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    log = plan.out_dir / "calibration.log"
    runs: list[rates.Run] = []
    knobs = plan.active_knobs()
    total = plan.runs * (1 + len(knobs))
    try:
        for i in range(1, plan.runs + 1):
            arms = [("A", Knobs(), plan.a_argv)] + [
                (f"B-{k}", Knobs(**{k: plan.slowdown[k]}),
                 lambda out, k=k: plan.b_argv(k, out)) for k in knobs]
            for arm, arm_knobs, argv_of in arms:
                out = plan.out_dir / f"{arm.lower()}-{i:02d}"
                run = run_one(argv_of(out), plan.env(arm_knobs), out, arm, i, log)
                runs.append(run)
                say(f"[{len(runs)}/{total}] {arm} {i}/{plan.runs}: exit {run.exit_code} in "
                    f"{run.seconds:.0f} s -> {out}")
            write(plan, runs)
    except KeyboardInterrupt:
        write(plan, runs, interrupted=True)
        raise
    return write(plan, runs)
