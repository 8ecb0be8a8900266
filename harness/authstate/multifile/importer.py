"""Baileys `useMultiFileAuthState` folder -> PostgreSQL (the migration path).

Two phases, so a bad folder never leaves a half-imported company:
1. read and validate *every* file (name, UTF-8, JSON, Buffer forms, storable value); any problem
   anywhere -> one `BadFolder` error listing each bad file and what is wrong; nothing written.
2. one transaction: creds + every key (and, with `replace`, removal of the company's old keys).

Keys get fresh `updated_at`/`expires_at` (the store's per-type TTLs), as if Baileys had just
written them. A company that already has state in the database is refused unless `replace`:
importing over live state would silently merge two histories of the same account.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.authstate import codec
from harness.authstate.company import validate_company_id
from harness.authstate.dbinfo import missing_tables
from harness.authstate.errors import AuthStateError
from harness.authstate.key_types import is_js_falsy, validate_key_id, validate_key_type
from harness.authstate.multifile import db, manifest
from harness.authstate.multifile.errors import BadFolder
from harness.authstate.multifile.names import (
    CREDS_FILE,
    MANIFEST_NAME,
    key_file_name,
    parse_file_name,
)
from harness.authstate.store import PostgresAuthStore

_CREDS_REQUIRED = ("noiseKey", "signedIdentityKey", "signedPreKey", "registrationId")


@dataclass(frozen=True)
class ImportResult:
    company_id: str
    directory: Path
    counts: dict[str, int]
    """Keys per type found in (dry run) or imported from the folder."""
    dry_run: bool
    replaced_keys: int = 0
    """Keys the company had before, removed because `replace` was given."""
    via_manifest: int = 0
    """Key files whose ids came from the export's manifest rather than the naming rule."""
    ignored: int = 0
    """Files Baileys never reads (hidden, or not *.json: .DS_Store, notes): left alone."""

    @property
    def keys(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        return {"company_id": self.company_id, "directory": str(self.directory),
                "counts": dict(self.counts), "keys": self.keys, "dry_run": self.dry_run,
                "replaced_keys": self.replaced_keys, "via_manifest": self.via_manifest}


@dataclass
class _Parsed:
    creds_text: str | None
    rows: list[tuple[str, str, str]]  # (type, id, JSON text for PostgreSQL), sorted
    via_manifest: int
    ignored: int = 0


def _describe_falsy(value: object) -> str:
    return "null" if value is None else codec.dumps(value)


def _read_value(path: Path) -> tuple[Any, str]:
    """Decoded value and its PostgreSQL JSON text; raises ValueError saying what is wrong."""
    data = path.read_bytes()
    if not data.strip():
        raise ValueError("empty file (an interrupted write leaves this)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (bad byte at offset {exc.start})") from None
    try:
        value = codec.loads(text)
        return value, codec.dumps_for_postgres(value)
    except AuthStateError as exc:
        reason = exc.message
        if "malformed JSON" in reason:
            reason += " (truncated or torn file?)"
        raise ValueError(reason) from None


def _parse_folder(directory: Path) -> _Parsed:
    problems: list[tuple[str, str]] = []
    entries = sorted(os.scandir(directory), key=lambda e: e.name)
    names = {e.name for e in entries}
    by_manifest: dict[str, tuple[str, str]] = {}
    if MANIFEST_NAME in names:
        try:
            by_manifest = manifest.loads((directory / MANIFEST_NAME).read_bytes())
        except (OSError, ValueError) as exc:
            problems.append((MANIFEST_NAME, str(exc)))
    creds_text: str | None = None
    rows: list[tuple[str, str, str]] = []
    used_manifest = ignored = 0
    for entry in entries:
        name = entry.name
        if name == MANIFEST_NAME:
            continue
        if name.startswith(".") or not name.endswith(".json"):
            ignored += 1  # useMultiFileAuthState reads only <name>.json: .DS_Store, notes ...
            continue
        if not entry.is_file():
            problems.append((name, "not a regular file"))
            continue
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            problems.append((ascii(name), "file name is not valid UTF-8"))
            continue
        ref = by_manifest.get(name) or parse_file_name(name)
        if name != CREDS_FILE and ref is None:
            problems.append((name, "not a Baileys auth-state file (expected creds.json or "
                             "<type>-<id>.json with a known key type)"))
            continue
        if ref is not None and key_file_name(*ref) != name:
            problems.append((name, "Baileys never writes this name (it replaces ':' and '/'); "
                             "the file was not written by useMultiFileAuthState"))
            continue
        try:
            value, text = _read_value(directory / name)
            if ref is None:
                if not isinstance(value, dict):
                    raise ValueError(f"creds must be a JSON object, got {type(value).__name__}")
                missing = [k for k in _CREDS_REQUIRED if k not in value]
                if missing:
                    raise ValueError(f"creds lack {', '.join(missing)} (not Baileys creds?)")
                creds_text = text
                continue
            if is_js_falsy(value):
                raise ValueError(f"value is {_describe_falsy(value)}; Baileys reads a falsy "
                                 "value as no key")
            validate_key_type(ref[0])
            validate_key_id(ref[1])
        except (OSError, ValueError) as exc:
            problems.append((name, exc.message if isinstance(exc, AuthStateError)
                             else str(exc)))
            continue
        rows.append((ref[0], ref[1], text))
        used_manifest += name in by_manifest
    if creds_text is None and CREDS_FILE not in {p[0] for p in problems}:
        problems.append((CREDS_FILE, "missing: not a Baileys auth folder, or creds were never "
                         "saved"))
    if problems:
        raise BadFolder(str(directory), problems)
    rows.sort()
    return _Parsed(creds_text, rows, used_manifest, ignored)


async def import_folder(store: PostgresAuthStore, company_id: str, directory: str | Path, *,
                        dry_run: bool = False, replace: bool = False) -> ImportResult:
    """Load a Baileys multi-file folder into the store as `company_id`; see module docstring.

    `dry_run` validates every file and checks the company exactly as a real run would, but
    writes nothing. Raises `BadFolder`, `AuthStateError` (company already has state and not
    `replace`), `StoreUnavailable`.
    """
    company_id = validate_company_id(company_id)
    directory = Path(directory)
    if not directory.is_dir():
        raise AuthStateError(f"{directory} is not a directory",
                             hint="pass the folder given to Baileys' useMultiFileAuthState")
    parsed = await asyncio.to_thread(_parse_folder, directory)
    assert parsed.creds_text is not None  # _parse_folder raises otherwise
    counts = dict(sorted(Counter(r[0] for r in parsed.rows).items()))
    try:
        async with store.exclusive(company_id), store.connection() as conn, \
                conn.transaction():
            if dry_run and await missing_tables(conn):  # a dry run creates no tables
                has_creds, old_keys = False, 0
            else:
                has_creds, old_keys = await db.existing_state(conn, company_id)
            if (has_creds or old_keys) and not replace:
                raise AuthStateError(
                    f"company {company_id!r} already has auth state in the database "
                    f"(creds: {'yes' if has_creds else 'no'}, keys: {old_keys}); nothing was "
                    "imported",
                    hint="pass --replace to overwrite it with the folder's state (the old keys "
                    "are deleted in the same transaction), or import under another company id")
            if not dry_run:
                await db.write_company_state(conn, company_id, parsed.creds_text, parsed.rows,
                                             replace=replace)
    except db.DB_ERRORS as exc:
        raise db.db_failure("importing auth state", company_id, exc, writes=not dry_run) from exc
    return ImportResult(company_id, directory, counts, dry_run,
                        old_keys if replace else 0, parsed.via_manifest, parsed.ignored)
