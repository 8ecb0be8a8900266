"""`authstate-harness calibrate`: the same code run N times -- how often gates and `compare`
are right (A/A: identical runs pass and compare clean; A/B: a deliberately slowed target is
caught). Unattended: each run is a real `run` in its own process, results are written after
every iteration, a run that errors is recorded and the calibration goes on.

Exit codes: 0 every measured rate met its goal (>= 95 %); 1 one did not; 2 harness error (bad
options); 130 interrupted (calibration.json / .md then hold what was measured).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from rich.markup import escape

from harness.calibration.knobs import DEFAULT_SLOWDOWN, NAMES, parse_values
from harness.calibration.session import DEFAULT_SUITES, KNOB_RUN, Plan, calibrate
from harness.commands._console import make_console
from harness.config import PROFILES
from harness.errors import ConfigError
from harness.paths import repo_root
from harness.runner.suites import SUITES

console = make_console()


def plan_from(args: argparse.Namespace) -> Plan:
    if args.runs < 2:
        raise ConfigError(f"--runs {args.runs}: A/A needs at least 2 runs to compare",
                          hint="e.g. --runs 20 (the figures the README quotes), --runs 2 to try")
    knobs = [k.strip() for k in args.knobs.split(",") if k.strip()] if args.knobs else []
    unknown = [k for k in knobs if k not in NAMES]
    if unknown:
        raise ConfigError(f"--knobs: unknown knob(s) {', '.join(unknown)}",
                          hint=f"choose from {', '.join(NAMES)} (comma-separated), or none")
    slowdown = {**DEFAULT_SLOWDOWN, **parse_values(args.slowdown)}
    suites = tuple(args.suite or DEFAULT_SUITES)
    out = Path(args.out) if args.out else (
        repo_root() / "reports" / f"calibration-{datetime.now(UTC):%Y%m%dT%H%M%SZ}")
    plan = Plan(runs=args.runs, out_dir=out, profile=args.profile, suites=suites,
                scenarios=tuple(args.scenario or ()), pytest_args=args.pytest_args,
                knobs=tuple(knobs), slowdown=slowdown, inner=args.inner, dsn=args.dsn,
                gates=tuple(args.gate))
    skipped = [k for k in knobs if k not in plan.active_knobs()]
    if skipped:
        console.print(f"[yellow]knob(s) {', '.join(skipped)} not measured: their suite "
                      f"({', '.join(KNOB_RUN[k][0] for k in skipped)}) is not selected[/]",
                      highlight=False)
    return plan


def _calibrate(args: argparse.Namespace) -> int:
    from harness.config import load_config

    load_config(None, args.gate)  # a bad --gate fails here, not in every run
    plan = plan_from(args)
    console.print(f"calibration: {plan.runs} iterations of 1 A run + "
                  f"{len(plan.active_knobs())} B runs -> {plan.out_dir}", highlight=False)
    cal = calibrate(plan, say=lambda line: console.print(escape(line), highlight=False))
    console.print()
    console.print((plan.out_dir / "calibration.md").read_text(encoding="utf-8"),
                  highlight=False, markup=False)
    met = [r.meets_goal for r in cal.rates if r.meets_goal is not None]
    return 0 if all(met) else 1


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "calibrate", help="run the same code N times: A/A pass and compare rates, A/B caught",
        description="Calibration of the gates and of `compare`: N iterations, each one A run "
                    "(the code as it is, behind a transparent wrapper target) and one B run per "
                    "knob (the same wrapper made slower on purpose: a slower journal replay, a "
                    "later recovery, slower calls). Prints and writes calibration.md (a table "
                    "to quote) and calibration.json. Exit 0 every rate met its goal (>= 95 %), "
                    "1 one did not, 2 harness error.")
    parser.add_argument("--runs", type=int, default=20, metavar="N",
                        help="iterations (default 20: ~2 h on 2 cores with the default suites)")
    parser.add_argument("--profile", default="quick", choices=list(PROFILES),
                        help="the run profile of every run (default quick)")
    parser.add_argument("--suite", action="append", default=None, choices=list(SUITES),
                        help=f"suites of the A runs (repeatable; default "
                             f"{', '.join(DEFAULT_SUITES)}: the suites with gates)")
    parser.add_argument("--scenario", action="append", default=None, metavar="NAME",
                        help="chaos scenarios of the A runs (default: the profile's)")
    parser.add_argument("--pytest-args", default=None, metavar="ARGS",
                        help="extra pytest arguments of the A runs, e.g. '-k journal_replay'")
    parser.add_argument("--knobs", default=",".join(DEFAULT_SLOWDOWN), metavar="LIST",
                        help="A/B knobs to measure, comma-separated: replay (journal replay "
                             "benchmark), rto (sever chaos scenario), p99 (load suite); '' for "
                             "A/A only (default all whose suite is selected)")
    parser.add_argument("--slowdown", default=None, metavar="SPEC",
                        help="how much slower the B runs are (default replay=1.3,rto=0.5,"
                             "p99=2: a 30 %% slower replay, RTO +0.5 s, every call 2x)")
    parser.add_argument("--inner", default="resilient", metavar="SPEC",
                        help="the target behind the wrapper (default resilient)")
    parser.add_argument("--gate", action="append", default=[], metavar="NAME=VALUE",
                        help="passed to every run (repeatable): a gate or a judging setting, "
                             "e.g. --gate undecided=fail to calibrate the strict policy")
    parser.add_argument("--dsn", default=None,
                        help="run every run against this PostgreSQL (also AUTHSTATE_DSN; default "
                             "each run starts its own embedded server, as `run` does)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="where the runs and calibration.md go (default "
                             "reports/calibration-<UTC stamp>/)")
    parser.set_defaults(func=_calibrate)
