"""`authstate-harness import-files DIR --company ID`: Baileys multi-file folder -> PostgreSQL."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.authstate.company import validate_company_id
from harness.authstate.multifile import import_folder
from harness.commands._maintenance import (
    add_dsn_argument,
    console,
    counts_table,
    resolve_dsn,
    with_store,
)
from harness.errors import ConfigError

DESCRIPTION = """\
Load a Baileys useMultiFileAuthState folder (creds.json, <type>-<id>.json) into PostgreSQL as
one company: the migration path from files, and the way back after a rollback.

Every file is read and validated first (known name, UTF-8, complete JSON, decodable Buffers,
storable values). If any file is bad, all bad files are listed with what is wrong and nothing
is written. Otherwise creds and all keys are written in one transaction, with fresh expiry times
per key type. Ids are recovered from file names by a documented rule (the longest known key
type wins; app-state-sync-key ids get their '/' back, sender-key ids their '::'), or from the
manifest an export-files run left. A company that already has state in the database is refused
unless --replace (its old keys are then deleted in the same transaction).

The store creates missing tables, columns and indexes before writing; --no-migrate never
does (point it at a database whose schema another service owns: a missing table or column
is then an error and nothing is written). health and cleanup never alter the schema.

Prints counts per key type; never key values or ids.

exit codes: 0 imported (or dry run passed); 2 error (bad files, company already has state,
bad company id, database unreachable)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "import-files", help="import a Baileys multi-file auth folder into PostgreSQL",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", metavar="DIR", help="the folder useMultiFileAuthState used")
    p.add_argument("--company", required=True, metavar="ID", help="company id to import as")
    add_dsn_argument(p)
    p.add_argument("--dry-run", action="store_true",
                   help="validate every file and check the company, write nothing")
    p.add_argument("--replace", action="store_true",
                   help="overwrite the company's existing creds and keys in the database")
    p.add_argument("--no-migrate", action="store_true",
                   help="never create or alter tables (a production database whose schema "
                        "another service owns): fail, writing nothing, if a table or column "
                        "is missing")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    company = validate_company_id(args.company)
    dsn = resolve_dsn(args)
    if not Path(args.directory).is_dir():  # before connecting
        raise ConfigError(f"{args.directory} is not a folder",
                          hint="give the folder useMultiFileAuthState wrote (creds.json, "
                               "<type>-<id>.json)")
    with console.status(f"importing {args.directory} ..."):
        result = with_store(dsn, lambda store: import_folder(
            store, company, args.directory, dry_run=args.dry_run, replace=args.replace),
            migrate=not (args.dry_run or args.no_migrate))
    verb = "would import" if result.dry_run else "imported"
    console.print(counts_table(f"{verb} {result.directory} as {company}", result.counts))
    if result.ignored:
        console.print(f"ignored {result.ignored} file(s) Baileys never reads (hidden, or not "
                      "*.json, e.g. .DS_Store)")
    if result.via_manifest:
        console.print(f"{result.via_manifest} id(s) taken from the export manifest")
    if result.replaced_keys:
        console.print(f"{'would replace' if result.dry_run else 'replaced'} "
                      f"{result.replaced_keys} existing key(s) of {company}")
    if result.dry_run:
        console.print("[yellow]dry run: nothing was written[/]")
    return 0
