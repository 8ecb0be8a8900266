"""Shared plumbing of the maintenance commands (export-files, import-files, cleanup, health).

They operate on a user's own database: the DSN must be given (`--dsn` or `AUTHSTATE_DSN`);
they never start an embedded PostgreSQL behind the user's back. Output carries counts, never
key values or key ids (JIDs are phone numbers).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TypeVar

from rich.table import Table

from harness.authstate.store import PostgresAuthStore
from harness.commands._console import make_console
from harness.dsn import check_dsn
from harness.errors import ConfigError

T = TypeVar("T")
console = make_console()
DSN_HELP = ("PostgreSQL DSN of the database holding whatsapp_auth/whatsapp_keys, e.g. "
            "postgresql://user:pass@host:5432/db (default: $AUTHSTATE_DSN)")


def add_dsn_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dsn", default=None, metavar="DSN", help=DSN_HELP)


def resolve_dsn(args: argparse.Namespace) -> str:
    """The DSN to use, checked (scheme, port range, URL form) before any I/O."""
    dsn = args.dsn or os.environ.get("AUTHSTATE_DSN")
    if not dsn:
        raise ConfigError(
            f"`{args.command}` needs the database to work on: no --dsn and no AUTHSTATE_DSN",
            hint="pass --dsn postgresql://user:pass@host:5432/db or export AUTHSTATE_DSN "
            "(for a scratch server: `authstate-harness pg up`)")
    return check_dsn(dsn)


def add_policy_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--type-policy", action="append", default=[], metavar="TYPE=delete|keep",
        help="override cleanup's per-type policy (repeatable; `all=delete` deletes every "
             "type by expiry alone, as the origin system did). Default: delete idle "
             "session, sender-key, sender-key-memory, device-list, tctoken; keep pre-key, "
             "app-state-sync-key, app-state-sync-version, identity-key, lid-mapping")


def check_folder_writable(path: str | os.PathLike[str], what: str) -> None:
    """Before connecting: the folder (or the nearest existing parent it would be created in)
    must be a directory this process may write. Permission is checked with access(2), which
    does not see every refusal (read-only mounts as root): callers still map OSError."""
    probe = Path(path).absolute()
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ConfigError(f"cannot write {what} {os.fspath(path)!r}: {probe} is not a folder",
                          hint="choose a path inside a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {what} {os.fspath(path)!r}: {probe} is not writable "
                          "by this user", hint="choose a folder you can write to")


def local_path_error(exc: OSError, path: str | os.PathLike[str], what: str) -> ConfigError:
    """An OSError on a local file or folder the user named, as a tool error with a hint."""
    reason = exc.strerror or type(exc).__name__
    return ConfigError(f"cannot write {what} {os.fspath(path)!r}: {reason}",
                       hint="choose a folder you can write to (a path under a regular file, "
                            "a read-only mount or a folder of another user cannot be written)")


# The live store's 2 s deadline and 1.5 s connect timeout suit a session's hot path on a nearby
# database; a maintenance command may run against a remote production database from an
# operator's laptop, where the origin system's own bounds (10 s connect, 30 s statements) fit.
MAINTENANCE_CONNECT_TIMEOUT_S = 10.0
MAINTENANCE_DEADLINE_S = 30.0


def with_store(dsn: str, work: Callable[[PostgresAuthStore], Awaitable[T]], *,
               migrate: bool = False) -> T:
    """Open the store (creating tables only when `migrate`), run `work`, always close."""
    async def main() -> T:
        store = await PostgresAuthStore.open(
            dsn, migrate_schema=migrate, connect_timeout=MAINTENANCE_CONNECT_TIMEOUT_S,
            operation_deadline=MAINTENANCE_DEADLINE_S)
        try:
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(main())


def counts_table(title: str, counts: Mapping[str, int], *, creds: bool = True) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("type")
    table.add_column("files" if creds else "rows", justify="right")
    if creds:
        table.add_row("creds", "1")
    for key_type, n in counts.items():
        table.add_row(key_type, str(n))
    table.add_row("[bold]keys total[/]", f"[bold]{sum(counts.values())}[/]")
    return table


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
