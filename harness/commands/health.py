"""`authstate-harness health`: the origin system's health checks; exit code reflects status."""

from __future__ import annotations

import argparse
import json
import sys

from rich.table import Table

from harness.authstate.company import validate_company_id
from harness.authstate.health import DEFAULT_SAMPLES, HealthReport, check_health
from harness.commands._maintenance import add_dsn_argument, console, resolve_dsn, with_store
from harness.errors import ConfigError

DESCRIPTION = """\
Run the origin system's health checks against the store, for one company (--company) or all:

  auth_row          creds row exists (all companies: no company has keys without creds)
  key_freshness     newest key update: >= 24 h ago warning, >= 48 h ago unhealthy
  expired_ratio     more than 50 % of keys expired: unhealthy
  expired_count     more than 500 expired keys: warning
  pool_utilization  this command's pool, and server connections / max_connections: > 80 % warning
  query_latency     point reads of one existing key: p95 > 200 ms or p99 > 500 ms (slow): warning

The status is the worst check. Output shows figures and counts, never key values or ids.

exit codes: 0 ok (or warning without --strict); 1 unhealthy (or warning with --strict);
2 harness error (bad company id, database unreachable, tables missing)
"""
_STYLE = {"ok": "green", "warning": "yellow", "unhealthy": "bold red"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "health", help="health checks with the origin thresholds (exit 1 when unhealthy)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dsn_argument(p)
    p.add_argument("--company", default=None, metavar="ID",
                   help="check one company (default: all companies)")
    p.add_argument("--samples", type=int, default=DEFAULT_SAMPLES, metavar="N",
                   help="timed reads for the latency check (default: %(default)s)")
    p.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    p.add_argument("--json", action="store_true", help="print the report as JSON only")
    p.set_defaults(func=run)


def exit_code(status: str, *, strict: bool) -> int:
    if status == "unhealthy" or (strict and status == "warning"):
        return 1
    return 0


def _table(report: HealthReport) -> Table:
    scope = report.company_id or "all companies"
    table = Table(title=f"health of {scope} at {report.as_of:%Y-%m-%d %H:%M:%S %Z}",
                  title_justify="left")
    table.add_column("check")
    table.add_column("status")
    table.add_column("details")
    for check in report.checks:
        table.add_row(check.name, f"[{_STYLE[check.status]}]{check.status}[/]", check.message)
    return table


def run(args: argparse.Namespace) -> int:
    company = None if args.company is None else validate_company_id(args.company)
    if args.samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {args.samples}")
    dsn = resolve_dsn(args)
    report = with_store(dsn, lambda store: check_health(store, company, samples=args.samples))
    if args.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        console.print(_table(report))
        console.print(f"status: [{_STYLE[report.status]}]{report.status}[/]")
    return exit_code(report.status, strict=args.strict)
