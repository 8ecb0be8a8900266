"""`authstate-harness export-files DIR --company ID`: PostgreSQL -> Baileys multi-file folder."""

from __future__ import annotations

import argparse

from harness.authstate.company import validate_company_id
from harness.authstate.multifile import MANIFEST_NAME, export_company
from harness.commands._maintenance import (
    add_dsn_argument,
    check_folder_writable,
    console,
    counts_table,
    local_path_error,
    resolve_dsn,
    with_store,
)

DESCRIPTION = f"""\
Write one company's creds and keys as a Baileys useMultiFileAuthState folder: creds.json and
<type>-<id>.json, named and serialized exactly as Baileys does (':' -> '-', '/' -> '__';
JSON.stringify with BufferJSON.replacer). This is the emergency-rollback path: point
useMultiFileAuthState(DIR) at the result and the service runs on files.

Creds and keys come from one consistent database snapshot. Files are staged, fsynced and renamed
into place (atomic per file, mode 0600); a failure before that leaves DIR untouched. A DIR that
is not empty is refused unless --overwrite, which replaces the auth-state files in it and
removes stale ones (other files are left alone). Ids whose file names Baileys' naming makes
ambiguous are recorded in {MANIFEST_NAME} (Baileys ignores it) so
import-files restores them exactly; keys whose names would collide, or that are too long for a
file name, make the export refuse with nothing written.

exit codes: 0 exported; 2 error (bad company id, DIR not empty or not writable, no creds,
database unreachable)
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export-files", help="export a company to a Baileys multi-file auth folder (rollback)",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", metavar="DIR", help="folder to write (created if missing)")
    p.add_argument("--company", required=True, metavar="ID", help="company id to export")
    add_dsn_argument(p)
    p.add_argument("--overwrite", action="store_true",
                   help="replace the auth-state files of a non-empty DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    company = validate_company_id(args.company)
    dsn = resolve_dsn(args)
    check_folder_writable(args.directory, "the export folder")  # before connecting
    try:
        with console.status(f"exporting {company} ..."):
            result = with_store(dsn, lambda store: export_company(
                store, company, args.directory, overwrite=args.overwrite))
    except OSError as exc:  # database errors arrive as StoreError: this is the local folder
        raise local_path_error(exc, args.directory, "the export folder") from None
    console.print(counts_table(f"exported {company} to {result.directory}", result.counts))
    if result.manifest_entries:
        console.print(f"{result.manifest_entries} key id(s) recorded in {MANIFEST_NAME} (their "
                      "file names alone are ambiguous; Baileys ignores this file)")
    if result.removed_stale:
        console.print(f"removed {result.removed_stale} stale auth-state file(s) of an older "
                      "export")
    if result.foreign_files:
        console.print(f"[yellow]left {len(result.foreign_files)} non-auth-state file(s) in "
                      "place (import-files ignores hidden and non-.json files; other .json "
                      "files it refuses until they are moved)[/]")
    return 0
