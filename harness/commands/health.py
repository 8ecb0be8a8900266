"""`authstate-harness health`: the origin system's health checks; exit code reflects status."""

from __future__ import annotations

import argparse
import json
import sys

from rich.table import Table

from harness.authstate.cleanup import DEFAULT_RETENTION_DAYS, CleanupPolicy
from harness.authstate.company import validate_company_id
from harness.authstate.health import DEFAULT_SAMPLES, HealthReport, check_arguments, check_health
from harness.commands._maintenance import (
    add_dsn_argument,
    add_policy_argument,
    console,
    resolve_dsn,
    with_store,
)

DESCRIPTION = """\
Run the origin system's health checks against the store, for one company (--company) or all:

  auth_row          creds row exists (all companies: no company has keys without creds)
  key_freshness     newest key update: >= 24 h ago warning, >= 48 h ago unhealthy
  expired_ratio     more than 50 % of keys due for cleanup: unhealthy (cleanup is not running)
  expired_count     more than 500 keys due for cleanup: warning
  kept_types        pre-key, app-state-sync-key/-version, identity-key, lid-mapping rows more
                    than the retention past expiry: warning (a cleanup by expiry alone, like
                    the origin's job, would delete them now and break sessions)
  pool_utilization  server client connections / connections allowed (max_connections minus
                    superuser_reserved_connections), per application_name: > 80 % warning
  query_latency     point reads of one existing key: p95 > 200 ms or p99 > 500 ms (slow): warning

"Due for cleanup" means exactly what `cleanup` with the same --retention-days and
--type-policy deletes: a row of a deletable type (session, sender-key, sender-key-memory,
device-list, tctoken) that expired more than the retention ago. Keys that expired more
recently are shown as a figure, not judged; pre-keys and the other kept types never make a
company unhealthy. On a table without expires_at/updated_at, the checks that need them say
which column is missing and how to add it; nothing is ever written.

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
    p.add_argument("--retention-days", type=float, default=DEFAULT_RETENTION_DAYS,
                   metavar="DAYS", help="the retention your cleanup runs with (default: "
                   "%(default)s): keys expired longer ago are due for cleanup")
    add_policy_argument(p)
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
    check_arguments(args.samples, args.retention_days)  # before any I/O
    policy = CleanupPolicy.parse(args.type_policy)
    dsn = resolve_dsn(args)
    report = with_store(dsn, lambda store: check_health(
        store, company, samples=args.samples, retention_days=args.retention_days,
        policy=policy))
    if args.json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
    else:
        console.print(_table(report))
        console.print(f"status: [{_STYLE[report.status]}]{report.status}[/]")
    return exit_code(report.status, strict=args.strict)
