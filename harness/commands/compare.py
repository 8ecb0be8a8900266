"""`authstate-harness compare OLD NEW`: is the new run worse than the old one beyond noise?

Exit codes: 0 no regression; 1 a gated figure (or the run verdict) regressed; 2 an input that
is missing, not JSON or not a report this harness reads, or two runs that cannot be compared
(another PostgreSQL major or kind, profile, target, core count or load shape) unless
`--allow-incomparable`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.markup import escape
from rich.table import Table

from harness.commands._console import make_console
from harness.errors import ConfigError
from harness.report.compare import (
    HEADER,
    IMPROVED,
    MISSING,
    REGRESSED,
    Comparison,
    Tolerance,
    compare,
    render_markdown,
    table_rows,
)
from harness.report.stored import read_report

console = make_console()
STYLE = {REGRESSED: "red", MISSING: "yellow", IMPROVED: "green"}


def tolerance_from(args: argparse.Namespace) -> Tolerance:
    if not 0 <= args.tolerance < 10:
        raise ConfigError(f"--tolerance {args.tolerance} is out of range",
                          hint="a relative allowance, e.g. 0.1 for 10 %")
    if args.noise < 0:
        raise ConfigError(f"--noise {args.noise} is negative",
                          hint="a multiplier on the runs' spread: 1 (default), 0 to ignore it")
    return Tolerance(relative=args.tolerance, noise=args.noise)


def check_comparable(cmp: Comparison, *, allow: bool) -> None:
    """Refuse (exit 2) to judge runs that differ in what makes figures comparable."""
    if cmp.incomparable and not allow:
        raise ConfigError(
            f"runs {cmp.old_id} and {cmp.new_id} are not comparable: "
            + "; ".join(d.describe() for d in cmp.incomparable),
            hint="compare runs of the same profile, target, PostgreSQL and machine (e.g. a "
                 "baseline made by the same CI job); --allow-incomparable compares anyway and "
                 "marks the verdict INCOMPARABLE")


def print_differences(cmp: Comparison) -> None:
    for d in cmp.differences:
        style = "bold red" if d.refuse else "yellow"
        label = "NOT COMPARABLE" if d.refuse else "differs"
        console.print(f"[{style}]{label}: {escape(d.describe())}[/]", highlight=False)


def print_comparison(cmp: Comparison, *, markdown: bool, all_rows: bool = False) -> None:
    if markdown:
        sys.stdout.write(render_markdown(cmp))
        return
    print_differences(cmp)
    table = Table(title=f"compare {escape(cmp.old_id)} -> {escape(cmp.new_id)}",
                  title_justify="left", box=None, pad_edge=False)
    for name in HEADER:
        table.add_column(name, overflow="fold")
    for row, cells in zip(cmp.rows, table_rows(cmp), strict=True):
        if not all_rows and row.verdict not in (REGRESSED, MISSING, IMPROVED) and not row.decides:
            continue
        style = STYLE.get(row.verdict, "")
        table.add_row(*[escape(c) for c in cells[:-1]],
                      f"[{style}]{escape(cells[-1])}[/]" if style else escape(cells[-1]),
                      style=None if row.decides else "dim")
    console.print(table)
    if cmp.only_old or cmp.only_new:
        console.print(f"not compared: {len(cmp.only_old)} only in old, {len(cmp.only_new)} only "
                      "in new", highlight=False)
    style = "red" if cmp.regressed else "green"
    console.print(f"[bold {style}]{escape(cmp.headline())}[/]", highlight=False)


def _compare(args: argparse.Namespace) -> int:
    tolerance = tolerance_from(args)
    old, new = read_report(Path(args.old)), read_report(Path(args.new))
    cmp = compare(old, new, tolerance, strict=args.strict)
    check_comparable(cmp, allow=args.allow_incomparable)
    print_comparison(cmp, markdown=args.markdown, all_rows=args.all)
    return cmp.exit_code


def add_tolerance_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tolerance", type=float, default=0.10, metavar="REL",
                        help="relative allowance per figure before a change counts (default "
                             "0.10 = 10 %%); each unit also has an absolute floor (0.05 s, "
                             "0.5 ms, 0.02 for ratios) and the runs' own spread widens it")
    parser.add_argument("--noise", type=float, default=1.0, metavar="K",
                        help="multiplier on the noise the runs' own ~95 %% intervals give "
                             "(sqrt(2) x the baseline's half-width); 0 ignores them (default 1)")
    parser.add_argument("--strict", action="store_true",
                        help="ungated rows (contrast runs, informational latencies) also fail")
    parser.add_argument("--allow-incomparable", action="store_true",
                        help="compare runs that differ in PostgreSQL major or kind, profile, "
                             "target, cores or load shape (refused by default: exit 2); the "
                             "verdict is marked INCOMPARABLE")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "compare", help="compare two runs figure by figure; exit 1 on a regression",
        description="Compare every figure two runs both have (RTO, MTTD, lost writes, anomaly "
                    "counts, latency percentiles, benchmark ratios) using each figure's better "
                    "direction and a noise-aware tolerance. Exit 0 no regression, 1 a gated "
                    "figure or the run verdict got worse, 2 bad input.")
    parser.add_argument("old", metavar="OLD", help="the baseline: a run folder or its report.json")
    parser.add_argument("new", metavar="NEW", help="the run to judge: a run folder or report.json")
    add_tolerance_options(parser)
    parser.add_argument("--markdown", action="store_true",
                        help="print a Markdown table (for $GITHUB_STEP_SUMMARY and MR notes)")
    parser.add_argument("--all", action="store_true",
                        help="terminal table: also list ungated rows within tolerance")
    parser.set_defaults(func=_compare)
