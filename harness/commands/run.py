"""`authstate-harness run`: the main job -- suites, gates, a report folder, an exit code.

Exit codes: 0 every check passed; 1 a test failed or a gate was missed; 2 harness error
(PostgreSQL could not be provided, bad configuration, pytest could not run); 130 Ctrl-C.
A report is written in every one of those cases once the run folder exists.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from harness.commands._console import make_console
from harness.commands.compare import (
    add_tolerance_options,
    check_comparable,
    print_comparison,
    tolerance_from,
)
from harness.config import PROFILES, UNDECIDED_POLICIES, Profile, profile
from harness.errors import ConfigError, HarnessError
from harness.report import chaos_table
from harness.report.compare import Tolerance, compare, render_markdown
from harness.report.stored import read_report
from harness.report.writer import atomic_write
from harness.runner.job import MainJob, RunOptions, RunResult, live_output
from harness.runner.suites import DEFAULT_SUITES, SUITES, select_suites

console = make_console()
STYLE = {"passed": "green", "failed": "red", "missed": "red", "not measured": "yellow",
         "not applicable": "dim", "skipped": "yellow", "error": "red", "interrupted": "yellow",
         "inconclusive": "yellow", "undecided": "yellow"}


def _pytest_args(text: str | None) -> list[str]:
    try:
        return shlex.split(text or "")
    except ValueError as exc:
        raise ConfigError(f"--pytest-args {text!r}: {exc}",
                          hint="quote it as one shell word, e.g. --pytest-args '-k stateful'"
                          ) from None


def check_profile_suites(prof: Profile, suites: list[str] | None) -> None:
    """A profile with a fixed set of suites (predeploy: chaos and load, its gates decide a
    deploy) may be narrowed with --suite, never widened: a suite outside it is refused, not
    silently added to (or dropped from) what the profile's verdict means."""
    outside = [s for s in suites or () if prof.suites and s not in prof.suites]
    if outside:
        raise ConfigError(
            f"--suite {', '.join(outside)}: the {prof.name} profile runs a fixed set of suites "
            f"({', '.join(prof.suites)})",
            hint=f"drop --suite {' --suite '.join(outside)} (or keep only "
                 f"{' / '.join(prof.suites)}), or run it under another profile, e.g. "
                 f"--profile ci --suite {outside[0]}")


def _run(args: argparse.Namespace) -> int:
    prof = profile(args.profile)
    check_profile_suites(prof, args.suite)
    options = RunOptions(
        profile=prof, suites=select_suites(args.suite or prof.suites or None), dsn=args.dsn,
        out_dir=Path(args.out) if args.out else None, gate_overrides=args.gate,
        pytest_args=_pytest_args(args.pytest_args), target=args.target,
        scenarios=args.scenario or (),
        live=live_output(console) and not args.plain, argv=["authstate-harness", *sys.argv[1:]],
        seed=args.seed, undecided=args.undecided)
    baseline = read_report(Path(args.baseline)) if args.baseline else None  # fail fast
    if baseline is not None and not args.allow_incomparable:
        precheck_baseline(baseline, prof.name)
    tolerance = tolerance_from(args)
    try:
        result = MainJob(options, console).run()
    except HarnessError as exc:
        if prof.verdict_line:
            print(f"{prof.name} ERROR exit={exc.exit_code} error={exc.message!r}", flush=True)
        raise
    print_summary(result, final=baseline is None)
    exit_code, regressed = result.exit_code, None
    if baseline is not None:
        try:
            exit_code = compare_with_baseline(result, baseline, tolerance, strict=args.strict,
                                              allow_incomparable=args.allow_incomparable)
        except HarnessError as exc:
            if prof.verdict_line:
                print(f"{prof.name} ERROR exit={exc.exit_code} error={exc.message!r}",
                      flush=True)
            raise
        regressed = exit_code != result.exit_code or None
        print_final_line(result, exit_code, regressed=bool(regressed))
    if prof.verdict_line:
        console.file.flush()
        print(verdict_line(prof.name, result, exit_code, regressed), flush=True)
    return exit_code


def verdict_line(name: str, result: RunResult, exit_code: int, regressed: bool | None) -> str:
    """One `key=value` line for deploy scripts (`... | tail -1`): verdict, exit code, gates met
    out of those that applied, what failed, and where the report is."""
    gates = [c for c in result.checks if c.kind == "gate" and c.status != "not applicable"]
    met = sum(c.status == "passed" for c in gates)
    # one token per check (`suite chaos` -> `suite:chaos`): the line is split on spaces
    failed = [c.name.removeprefix("gate ").replace(" ", ":") for c in result.checks
              if not c.passed]
    verdict = "PASSED" if exit_code == 0 else result.status.upper() if result.exit_code else \
        "REGRESSED"
    parts = [f"{name} {verdict}", f"exit={exit_code}", f"gates={met}/{len(gates)}"]
    if failed:
        parts.append("failed=" + ",".join(failed))
    undecided = [c.name.removeprefix("gate ") for c in result.checks if c.warning]
    if undecided:
        parts.append("undecided=" + ",".join(undecided))
    if regressed:
        parts.append("baseline=regressed")
    parts.append(f"report={result.out_dir / 'report.html'}")
    return " ".join(parts)


def precheck_baseline(baseline: dict[str, Any], profile_name: str) -> None:
    """What can be known before the run: a baseline of another profile or core count would be
    refused after it, so refuse it now (exit 2) instead of after minutes of measuring."""
    from harness.report.comparable import differences
    from harness.report.environment import machine

    here = {"run": {"profile": profile_name}, "environment": {"machine": machine()}}
    refused = [d for d in differences(baseline, here) if d.refuse]
    if refused:
        raise ConfigError(
            "--baseline is not comparable with this run: "
            + "; ".join(d.describe() for d in refused),
            hint="use a baseline made with the same profile on a machine with as many cores "
                 "(or --allow-incomparable to compare anyway)")


def compare_with_baseline(result: RunResult, baseline: dict[str, Any], tolerance: Tolerance,
                          *, strict: bool, allow_incomparable: bool = False) -> int:
    """`--baseline DIR`: compare this run with it, keep compare.md beside the report; a
    regression turns a passing run's exit code into 1 (a harness error keeps its code). A
    baseline that is not comparable (another profile, target, PostgreSQL, core count) is
    refused (exit 2) unless `allow_incomparable`."""
    cmp = compare(baseline, result.report, tolerance, strict=strict)
    atomic_write(result.out_dir / "compare.md", render_markdown(cmp))
    check_comparable(cmp, allow=allow_incomparable)
    console.print()
    print_comparison(cmp, markdown=False)
    return 1 if result.exit_code == 0 and cmp.regressed else result.exit_code


def rto_table(scenarios: list[dict[str, Any]]) -> Table:
    """The chaos scenarios, narrower than report.md's RTO table (which has every column)."""
    contrast = any(s.get("contrast") for s in scenarios)
    caption = ("lost writes / stale reads count calls; the verdict counts each anomaly in its "
               "own unit (keys, key reads): see report.md"
               + ("\n* contrast row: the plain store, not gated" if contrast else ""))
    table = Table(title="chaos: detection (MTTD) and recovery (RTO) per scenario",
                  title_justify="left", box=None, pad_edge=False, caption=caption,
                  caption_justify="left")
    for name in chaos_table.COMPACT_HEADER:
        table.add_column(name, overflow="fold")
    for scenario in scenarios:
        cells = [escape(c) for c in chaos_table.compact_row(scenario)]
        style = STYLE.get(chaos_table.verdict_kind(scenario), "")
        cells[-1] = f"[{style}]{cells[-1]}[/]"
        table.add_row(*cells, style="dim" if scenario.get("contrast") else None)
    return table


def final_line(result: RunResult, exit_code: int, *, regressed: bool = False
               ) -> tuple[str, str]:
    """The run's last line and its style: one verdict, the same as the exit code's, whatever
    was printed before (a passing run that regressed against --baseline says REGRESSED)."""
    report = result.report
    undecided = [c for c in result.checks if c.warning]
    status = "regressed" if regressed else result.status
    text = status.upper()
    if regressed:
        text += " against the baseline (the run's own checks passed; see compare.md)"
    elif undecided and result.status == "passed":
        text += (f" with {len(undecided)} undecided gate{'s' if len(undecided) > 1 else ''} "
                 "(warning only)")
    text += (f" in {report['run']['duration_s']:.0f}s -> {result.out_dir / 'report.md'} "
             f"and report.html (exit {exit_code})")
    style = "red" if regressed else STYLE.get(result.status, "")
    if undecided and not regressed and result.status == "passed":
        style = "yellow"
    return text, style


def print_final_line(result: RunResult, exit_code: int, *, regressed: bool = False) -> None:
    text, style = final_line(result, exit_code, regressed=regressed)
    console.print(f"\n[bold {style}]{escape(text)}[/]", highlight=False)
    if result.report["run"].get("error"):
        console.print(f"[red]{escape(result.report['run']['error'])}[/]", highlight=False)


def print_summary(result: RunResult, *, final: bool = True) -> None:
    """Tables, checks and (with `final`) the verdict line; `run --baseline` prints the verdict
    itself after the comparison, so the last line always matches the exit code."""
    report = result.report
    scenarios = (report.get("chaos") or {}).get("scenarios") or []
    if scenarios:
        console.print()
        console.print(rto_table(scenarios))
    load = report.get("load")
    if load and load.get("ops"):
        from harness.commands.load import latency_table, load_lines

        console.print()
        console.print(latency_table(load))
        for line in load_lines(load):
            console.print(escape(line), highlight=False)
    signal = report.get("signal") or []
    if signal:
        from harness.report.signal_table import summary_line

        console.print()
        for item in signal:
            console.print(escape(summary_line(item)), highlight=False,
                          style="dim" if item.get("contrast") else None)
    table = Table(title="checks", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check in result.checks:
        style = STYLE.get(check.status, "")
        table.add_row(check.name, f"[{style}]{check.status}[/]", escape(check.detail))
    console.print()
    console.print(table)
    skipped = sum(s["counts"]["skipped"] for s in report["suites"])
    if skipped:
        reasons = {k["reason"] for s in report["suites"] for k in s["skipped"]}
        console.print(f"[yellow]{skipped} skipped[/]: " + "; ".join(sorted(reasons)[:3]),
                      highlight=False)
    scope = report["config"].get("scope") or {}
    gaps = [*(scope.get("suites_not_run") or ()), *(scope.get("suites_deselected") or ())]
    if gaps:
        console.print(f"[dim]not covered by this run: suite(s) {', '.join(gaps)} (see "
                      "report.md)[/]", highlight=False)
    undecided = [c for c in result.checks if c.status == "undecided"]
    if undecided:
        policy = undecided[0].policy
        console.print(
            f"[yellow]{len(undecided)} gate(s) undecided: the interval straddles the bound "
            f"even after measuring more ({', '.join(c.name for c in undecided)}); "
            + ("they fail the run (undecided = \"fail\")" if policy == "fail" else
               "a warning, not a failure (undecided = \"warn\"); see docs/gates-and-noise.md")
            + "[/]", highlight=False)
    seed = ((report.get("config") or {}).get("chaos") or {}).get("seed")
    if seed is not None:
        console.print(f"[dim]chaos seed {seed}: --seed {seed} replays these repetitions[/]",
                      highlight=False)
    if final:
        print_final_line(result, result.exit_code)


def register(sub: argparse._SubParsersAction) -> None:
    profiles = "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values())
    parser = sub.add_parser(
        "run", help="the main job: run the suites, check the gates, write a report",
        description="Provision PostgreSQL (--dsn / AUTHSTATE_DSN > Docker > embedded), run the "
                    "suites with a progress display, check every gate, write "
                    "reports/<UTC timestamp>/report.json and report.md. Exit 0 all checks "
                    "passed, 1 a test failed or a gate was missed, 2 harness error.")
    parser.add_argument("--profile", default="quick", choices=list(PROFILES),
                        help=f"how thorough (default quick; the chaos suite runs its profile "
                             f"of the same name). {profiles}")
    parser.add_argument("--dsn", default=None,
                        help="use this PostgreSQL instead of starting one (also AUTHSTATE_DSN); "
                             "needs CREATEDB (or CREATE on the database)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write the run folder here instead of reports/<UTC timestamp>/ "
                             "(a new or empty directory, or an earlier run folder)")
    parser.add_argument("--suite", action="append", default=None, choices=list(SUITES),
                        help=f"run only this suite (repeatable; default: the profile's suites, "
                             f"else {', '.join(DEFAULT_SUITES)})")
    parser.add_argument("--target", default=None, metavar="SPEC",
                        help="what every suite runs against: reference, resilient, "
                             "module.path:factory or path/to/file.py:factory (an async "
                             "factory(dsn, *, cache_dir) -> store), or node:path/to/store.js"
                             "[#export] (a Node.js useXAuthState(companyId) module, default "
                             "export unless #export). Default: each suite's own, "
                             "i.e. reference for property and bench, resilient for chaos")
    parser.add_argument("--scenario", action="append", default=None, metavar="NAME",
                        help="run only this chaos scenario (repeatable; default: the profile's "
                             "scenarios), e.g. --scenario sever --scenario pg-restart")
    parser.add_argument("--gate", action="append", default=[], metavar="NAME=VALUE",
                        help="override a gate of [tool.authstate-harness] (repeatable), "
                             "e.g. --gate bench-bulk-min-ratio=0.9; also its judging "
                             "settings, e.g. --gate more-chaos-repetitions=0")
    parser.add_argument("--pytest-args", default=None, metavar="ARGS",
                        help="extra pytest arguments as one string, e.g. '-k stateful'")
    parser.add_argument("--baseline", default=None, metavar="DIR",
                        help="after the run, compare it with this earlier run folder (or "
                             "report.json), like `compare DIR NEW`: a regression makes the "
                             "run exit 1; the table is kept as compare.md in the run folder")
    add_tolerance_options(parser)
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="replay the chaos repetitions of an earlier run (its report's "
                             "config.chaos.seed): the same traffic seeds and fault-start "
                             "jitters; default: fresh ones every run")
    parser.add_argument("--undecided", choices=UNDECIDED_POLICIES, default=None,
                        help="what a gate whose interval still straddles its bound after "
                             "measuring more does: warn (report it, exit 0 if nothing else "
                             "failed) or fail (exit 1); default: `undecided` in "
                             "[tool.authstate-harness], else warn")
    parser.add_argument("--plain", action="store_true",
                        help="plain progress lines instead of live bars (default when CI is set "
                             "or output is not a terminal)")
    parser.set_defaults(func=_run)
