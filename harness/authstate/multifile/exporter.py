"""PostgreSQL -> Baileys `useMultiFileAuthState` folder (the emergency-rollback path).

Files are written as Baileys writes them (`JSON.stringify(value, BufferJSON.replacer)`, compact),
but more carefully than Baileys does: everything is first written and fsynced into a staging
directory inside the target, then each file is renamed into place (atomic per file) and the
directory fsynced. A failure before the rename phase leaves the folder exactly as it was (with
`overwrite`, the previous export survives). Keys are read from one REPEATABLE READ snapshot, so
creds and keys are consistent with each other even while the service keeps writing.
Files are created mode 0600 (directory 0700 when we create it): they hold private keys.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.authstate import codec
from harness.authstate.company import validate_company_id
from harness.authstate.dbinfo import require_tables
from harness.authstate.multifile import db, manifest
from harness.authstate.multifile.errors import ExportRefused
from harness.authstate.multifile.names import (
    CREDS_FILE,
    MANIFEST_NAME,
    key_file_name,
    name_too_long,
    parse_file_name,
    round_trips,
)
from harness.authstate.store import PostgresAuthStore

_STAGING_PREFIX = ".authstate-export-"


@dataclass(frozen=True)
class ExportResult:
    company_id: str
    directory: Path
    counts: dict[str, int]
    """Key files written per type (creds.json not included)."""
    manifest_entries: int = 0
    """Keys whose ids the naming rule cannot give back, recorded in the manifest."""
    removed_stale: int = 0
    """Auth-state files of an older export removed (only with `overwrite`)."""
    foreign_files: list[str] = field(default_factory=list)
    """Files in the folder that are not auth-state files, left untouched (only with `overwrite`)."""

    @property
    def keys(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {"company_id": self.company_id, "directory": str(self.directory),
                "counts": dict(self.counts), "keys": self.keys,
                "manifest_entries": self.manifest_entries, "removed_stale": self.removed_stale,
                "foreign_files": len(self.foreign_files)}


def _is_auth_state_name(name: str) -> bool:
    return (name in (CREDS_FILE, MANIFEST_NAME) or parse_file_name(name) is not None
            or name.startswith(_STAGING_PREFIX))


def _prepare_directory(directory: Path, overwrite: bool) -> bool:
    """Check the target; create it if missing. True when we created it."""
    if directory.exists() and not directory.is_dir():
        raise ExportRefused(f"{directory} exists and is not a directory",
                            hint="choose a directory path for the export")
    if directory.is_dir():
        entries = list(directory.iterdir())
        if entries and not overwrite:
            raise ExportRefused(
                f"{directory} is not empty ({len(entries)} "
                f"{'entry' if len(entries) == 1 else 'entries'}); nothing was written",
                hint="export into a new or empty directory, or pass --overwrite to replace the "
                "auth-state files in it (other files are left alone)")
        return False
    directory.mkdir(mode=0o700, parents=True)
    return True


def _file_bytes(stored_json: str) -> bytes:
    """What `JSON.stringify(value, BufferJSON.replacer)` writes for a stored value."""
    return codec.dumps(codec.loads(stored_json)).encode("utf-8")


def _write_file(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_into_place(staging: Path, directory: Path,
                     written: set[str]) -> tuple[list[Path], list[Path]]:
    """Rename each staged file over its target, then drop stale auth-state files of an older
    export; return (stale removed, foreign files left alone)."""
    stale: list[Path] = []
    foreign: list[Path] = []
    for entry in directory.iterdir():
        if entry.name in written or entry == staging:
            continue
        (stale if _is_auth_state_name(entry.name) else foreign).append(entry)
    for name in sorted(written):
        os.replace(staging / name, directory / name)
    for entry in stale:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    staging.rmdir()
    _fsync_dir(directory)
    return stale, foreign


async def _plan(conn: Any, company_id: str) -> tuple[dict[str, tuple[str, str]], Counter[str]]:
    """Pass 1 over ids only: manifest entries and counts; refuse what Baileys cannot hold."""
    owners: dict[str, tuple[str, str]] = {}
    entries: dict[str, tuple[str, str]] = {}
    counts: Counter[str] = Counter()
    collisions: Counter[str] = Counter()
    too_long: Counter[str] = Counter()
    async for key_type, key_id in db.iter_key_refs(conn, company_id):
        name = key_file_name(key_type, key_id)
        counts[key_type] += 1
        if name in owners or name in (CREDS_FILE, MANIFEST_NAME):
            collisions[key_type] += 1
        owners[name] = (key_type, key_id)
        if name_too_long(name):
            too_long[key_type] += 1
        if not round_trips(key_type, key_id):
            entries[name] = (key_type, key_id)
    problems = [f"{n} {t} key(s) share a file name with another key once ':' and '/' are "
                "replaced (Baileys cannot hold both)" for t, n in sorted(collisions.items())]
    problems += [f"{n} {t} key(s) have ids too long for a file name (> 255 bytes)"
                 for t, n in sorted(too_long.items())]
    if problems:
        raise ExportRefused(
            f"company {company_id!r} cannot be written as a Baileys folder; nothing was "
            "written: " + "; ".join(problems),
            hint="these keys are not representable in useMultiFileAuthState's file layout; "
            "remove or rename them in the database first if the rollback must proceed")
    return entries, counts


async def export_company(store: PostgresAuthStore, company_id: str, directory: str | Path, *,
                         overwrite: bool = False) -> ExportResult:
    """Write the company's creds and keys as a Baileys multi-file folder; see module docstring.

    Raises `ExportRefused` (non-empty folder without `overwrite`, no creds, ids Baileys' file
    layout cannot hold) before writing anything, `StoreUnavailable` on database errors.
    """
    company_id = validate_company_id(company_id)
    directory = Path(directory)
    created = _prepare_directory(directory, overwrite)
    staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=directory))
    renaming = False
    try:
        try:
            async with db.snapshot(store) as conn:
                await require_tables(conn)
                creds_text = await db.read_creds_text(conn, company_id)
                if creds_text is None:
                    raise ExportRefused(
                        f"company {company_id!r} has no creds in the database; nothing to export",
                        hint="check the company id (ids are case-sensitive)")
                entries, counts = await _plan(conn, company_id)
                _write_file(staging / CREDS_FILE, _file_bytes(creds_text))
                written = {CREDS_FILE}
                async for key_type, key_id, text in db.iter_key_values(conn, company_id):
                    name = key_file_name(key_type, key_id)
                    _write_file(staging / name, _file_bytes(text))
                    written.add(name)
        except db.DB_ERRORS as exc:
            raise db.db_failure("exporting auth state", company_id, exc, writes=False) from exc
        if entries:
            _write_file(staging / MANIFEST_NAME, manifest.dumps(entries))
            written.add(MANIFEST_NAME)
        _fsync_dir(staging)
        renaming = True
        stale, foreign = _move_into_place(staging, directory, written)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created and not renaming:
            shutil.rmtree(directory, ignore_errors=True)
        raise
    return ExportResult(company_id, directory, dict(sorted(counts.items())), len(entries),
                        len(stale), sorted(e.name for e in foreign))
