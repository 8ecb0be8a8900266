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

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.config import PROFILES, profile
from harness.errors import ConfigError
from harness.runner.job import MainJob, RunOptions, RunResult, live_output
from harness.runner.suites import DEFAULT_SUITES, SUITES, select_suites

console = Console(soft_wrap=True)
STYLE = {"passed": "green", "failed": "red", "missed": "red", "not measured": "yellow",
         "error": "red", "interrupted": "yellow"}


def _pytest_args(text: str | None) -> list[str]:
    try:
        return shlex.split(text or "")
    except ValueError as exc:
        raise ConfigError(f"--pytest-args {text!r}: {exc}",
                          hint="quote it as one shell word, e.g. --pytest-args '-k stateful'"
                          ) from None


def _run(args: argparse.Namespace) -> int:
    options = RunOptions(
        profile=profile(args.profile), suites=select_suites(args.suite), dsn=args.dsn,
        out_dir=Path(args.out) if args.out else None, gate_overrides=args.gate,
        pytest_args=_pytest_args(args.pytest_args),
        live=live_output(console) and not args.plain, argv=["authstate-harness", *sys.argv[1:]])
    result = MainJob(options, console).run()
    print_summary(result)
    return result.exit_code


def print_summary(result: RunResult) -> None:
    table = Table(title="checks", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail")
    for check in result.checks:
        style = STYLE.get(check.status, "")
        table.add_row(check.name, f"[{style}]{check.status}[/]", escape(check.detail))
    console.print()
    console.print(table)
    report = result.report
    skipped = sum(s["counts"]["skipped"] for s in report["suites"])
    if skipped:
        reasons = {k["reason"] for s in report["suites"] for k in s["skipped"]}
        console.print(f"[yellow]{skipped} skipped[/]: " + "; ".join(sorted(reasons)[:3]),
                      highlight=False)
    style = STYLE.get(result.status, "")
    console.print(f"\n[bold {style}]{result.status.upper()}[/] in "
                  f"{report['run']['duration_s']:.0f}s -> {result.out_dir / 'report.md'} "
                  f"(exit {result.exit_code})", highlight=False)
    if report["run"].get("error"):
        console.print(f"[red]{escape(report['run']['error'])}[/]", highlight=False)


def register(sub: argparse._SubParsersAction) -> None:
    profiles = "; ".join(f"{p.name}: {p.description}" for p in PROFILES.values())
    parser = sub.add_parser(
        "run", help="the main job: run the suites, check the gates, write a report",
        description="Provision PostgreSQL (--dsn / AUTHSTATE_DSN > Docker > embedded), run the "
                    "suites with a progress display, check every gate, write "
                    "reports/<UTC timestamp>/report.json and report.md. Exit 0 all checks "
                    "passed, 1 a test failed or a gate was missed, 2 harness error.")
    parser.add_argument("--profile", default="quick", choices=list(PROFILES),
                        help=f"how thorough (default quick). {profiles}")
    parser.add_argument("--dsn", default=None,
                        help="use this PostgreSQL instead of starting one (also AUTHSTATE_DSN); "
                             "needs CREATEDB (or CREATE on the database)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="write the run folder here instead of reports/<UTC timestamp>/ "
                             "(a new or empty directory, or an earlier run folder)")
    parser.add_argument("--suite", action="append", default=None, choices=list(SUITES),
                        help=f"run only this suite (repeatable; default: "
                             f"{', '.join(DEFAULT_SUITES)})")
    parser.add_argument("--gate", action="append", default=[], metavar="NAME=VALUE",
                        help="override a gate of [tool.authstate-harness] (repeatable), "
                             "e.g. --gate bench-bulk-min-ratio=0.9")
    parser.add_argument("--pytest-args", default=None, metavar="ARGS",
                        help="extra pytest arguments as one string, e.g. '-k stateful'")
    parser.add_argument("--plain", action="store_true",
                        help="plain progress lines instead of live bars (default when CI is set "
                             "or output is not a terminal)")
    parser.set_defaults(func=_run)
