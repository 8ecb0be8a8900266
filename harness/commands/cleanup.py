"""`authstate-harness cleanup`: the origin system's expired-key cleanup, with metrics."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Awaitable, Callable

from rich.table import Table

from harness.authstate.cleanup import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_RETENTION_DAYS,
    CleanupPolicy,
    CleanupResult,
    TableMetrics,
    check_args,
    cleanup_expired_keys,
)
from harness.authstate.store import PostgresAuthStore
from harness.commands._maintenance import (
    add_dsn_argument,
    add_policy_argument,
    console,
    human_bytes,
    resolve_dsn,
    with_store,
)

DESCRIPTION = f"""\
Delete rows of whatsapp_keys that expired more than --retention-days ago
(default: {DEFAULT_RETENTION_DAYS}), oldest first, {DEFAULT_BATCH_SIZE} rows per DELETE in its own
short transaction; rows a live writer holds locked are skipped until the next run. Prints
row counts, table and index sizes and expired rows by expiry age before and after.

Only key types whose loss the protocol repairs are deleted (the per-type policy, printed by
--dry-run): idle session, sender-key, sender-key-memory, device-list and tctoken rows. Pre-keys
(unconsumed ones are still published to WhatsApp), app-state-sync-key/-version, identity-key
and lid-mapping rows are kept whatever their expiry: losing them breaks sessions. Override per
type with --type-policy TYPE=delete|keep (a warning names what it can break).

Expiry age = now - expires_at (database clock), buckets (lower, upper]: <1d, 1-7d, 7-14d,
14-30d, >30d. Rows without expires_at never expire; on a table without an expires_at column,
expiry is updated_at + the type's TTL (7 or 14 days). Sizes do not drop right after a delete:
autovacuum makes the space reusable; VACUUM FULL returns it to the OS.

--archive FILE.jsonl writes every deleted row (company, type, id, timestamps and the value: key
material) to a new file, mode 0600, fsynced before each batch commits. It refuses an existing
file. Nothing else ever prints key values or ids.

If the database goes away mid-run, the error says how many rows were already deleted (they
stay deleted; a new run picks up the rest).

exit codes: 0 done (or dry run); 2 error (bad arguments, database unreachable, tables or
columns missing, archive exists)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "cleanup", help="delete keys expired longer than a retention (dry run, archive, metrics)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_dsn_argument(p)
    p.add_argument("--dry-run", action="store_true",
                   help="report what would be deleted; delete nothing, write no archive")
    p.add_argument("--retention-days", type=float, default=DEFAULT_RETENTION_DAYS, metavar="DAYS",
                   help="keep expired keys this long (default: %(default)s)")
    p.add_argument("--max-delete", type=int, default=None, metavar="N",
                   help="delete at most N rows in this run (default: no limit)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N",
                   help="rows per DELETE statement/transaction (default: %(default)s)")
    p.add_argument("--archive", default=None, metavar="FILE.jsonl",
                   help="append every deleted row to this new file (mode 0600)")
    add_policy_argument(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON only")
    p.set_defaults(func=run)


def _metrics_table(result: CleanupResult) -> Table:
    before, after = result.before, result.after
    table = Table(title=f"whatsapp_keys as of {result.as_of:%Y-%m-%d %H:%M:%S %Z}",
                  title_justify="left")
    table.add_column("")
    table.add_column("now (dry run)" if after is None else "before", justify="right")
    if after is not None:
        table.add_column("after", justify="right")

    def row(label: str, get: Callable[[TableMetrics], int],
            fmt: Callable[[int], str] = str) -> None:
        cells = [fmt(get(before))] + ([] if after is None else [fmt(get(after))])
        table.add_row(label, *cells)

    row("keys", lambda m: m.total_keys)
    row("  never expire", lambda m: m.no_expiry_keys)
    row("  expired", lambda m: m.expired_keys)
    for label in before.age_buckets:
        row(f"    expired {label} ago", lambda m, label=label: m.age_buckets[label])
    row(f"  eligible (> {result.retention_days:g} d, deletable types)", lambda m: m.eligible_keys)
    row(f"  kept by policy (> {result.retention_days:g} d)", lambda m: m.kept_by_policy)
    row("auth rows (companies with creds)", lambda m: m.auth_rows)
    row("keys table + indexes", lambda m: m.sizes.keys_total, human_bytes)
    row("  table (heap + TOAST)", lambda m: m.sizes.keys_table, human_bytes)
    row("  indexes", lambda m: m.sizes.keys_indexes, human_bytes)
    row("auth table + indexes", lambda m: m.sizes.auth_total, human_bytes)
    return table


def _types(by_type: dict[str, int]) -> str:
    return ", ".join(f"{t} {n}" for t, n in by_type.items()) or "none"


def _policy_table(result: CleanupResult) -> Table:
    table = Table(title="per-type policy (--type-policy TYPE=delete|keep overrides)",
                  title_justify="left")
    for name, justify in (("type", "left"), ("policy", "left"), ("past retention", "right"),
                          ("why", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    by_type = result.before.by_type
    for entry in result.policy.describe(by_type):
        action = entry["action"] + (" (override)" if entry["overridden"] else "")
        style = "red" if entry["key_type"] in result.policy.risky() else ""
        past = by_type.get(entry["key_type"], {}).get("past_retention", 0)
        table.add_row(entry["key_type"], f"[{style}]{action}[/]" if style else action,
                      str(past), entry["reason"])
    return table


def _risk_warning(policy: CleanupPolicy) -> str | None:
    risky = policy.risky()
    if not risky:
        return None
    return (f"[bold red]warning:[/] --type-policy deletes {', '.join(risky)}: losing these "
            "breaks sessions (undecryptable messages, re-pairing); keep an --archive")


def run(args: argparse.Namespace) -> int:
    check_args(args.retention_days, args.max_delete, args.batch_size)  # before any I/O
    policy = CleanupPolicy.parse(args.type_policy)
    dsn = resolve_dsn(args)
    warning = _risk_warning(policy)
    if warning and not args.json:
        console.print(warning)

    def work(store: PostgresAuthStore) -> Awaitable[CleanupResult]:
        return cleanup_expired_keys(
            store, retention_days=args.retention_days, dry_run=args.dry_run,
            max_delete=args.max_delete, archive=args.archive, batch_size=args.batch_size,
            policy=policy)

    if args.json:
        result = with_store(dsn, work)
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
        return 0
    with console.status("cleaning up ..." if not args.dry_run else "measuring ..."):
        result = with_store(dsn, work)
    console.print(_metrics_table(result))
    if result.expiry_source != "expires_at":
        console.print(f"[yellow]whatsapp_keys has no expires_at column: expiry taken as "
                      f"{result.expiry_source}[/]")
    limit = "" if result.max_delete is None else f" (max-delete {result.max_delete})"
    if result.dry_run:
        console.print(_policy_table(result))
        console.print(f"[yellow]dry run:[/] would delete {result.deleted} row(s){limit}: "
                      f"{_types(result.deleted_by_type)}; nothing was deleted")
        if args.archive:
            console.print("[yellow]dry run: no archive written[/]")
    else:
        console.print(f"deleted {result.deleted} row(s) in {result.batches} batch(es){limit}: "
                      f"{_types(result.deleted_by_type)}")
        if result.before.kept_by_policy:
            console.print(f"kept {result.before.kept_by_policy} row(s) of types the policy "
                          "keeps (--dry-run shows the policy)")
        if result.archive_path:
            console.print(f"archived {result.archived_rows} row(s) to {result.archive_path} "
                          "(mode 0600: it holds key material)")
    if warning:
        console.print(warning)
    return 0
