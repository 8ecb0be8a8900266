"""The origin system's cleanup job: delete keys expired longer than a retention, with metrics.

Definitions (every figure in `CleanupResult` uses them, against one reference time `as_of`,
the database clock at the start of the run unless given):

- *expired*: `expires_at < as_of`. Rows with no `expires_at` never expire and are never deleted.
- *expiry age* of an expired row: `as_of - expires_at` (how long ago it expired, not how old
  the key is). Buckets are half-open on the left: `<1d` = (0, 1 day], `1-7d` = (1, 7 days],
  `7-14d` = (7, 14], `14-30d` = (14, 30], `>30d` = more than 30 days.
- *eligible*: expiry age > retention, i.e. `expires_at < as_of - retention`. With the default
  retention of 30 days the eligible rows are exactly the `>30d` bucket.

Deletion takes the oldest-expired rows first, `batch_size` per statement, each batch its own
short transaction; rows a live writer holds locked are skipped (picked up next run) and a row
refreshed meanwhile (new `expires_at`) is re-checked and kept. At most `max_delete` rows go per
run. With `archive`, each batch's rows (full values: key material) are appended to a JSONL file
created mode 0600 and fsynced *before* the batch commits, so the archive always holds every
deleted row (after a failed commit it may hold rows that were not deleted: a superset).
Nothing here logs or prints key values or ids.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import asyncpg

from harness.authstate.db_errors import DB_ERRORS, classify
from harness.authstate.dbinfo import TableSizes, require_tables, table_sizes
from harness.authstate.store import PostgresAuthStore
from harness.errors import ConfigError

DEFAULT_RETENTION_DAYS: Final = 30
DEFAULT_BATCH_SIZE: Final = 5000

AGE_BUCKETS: Final[tuple[tuple[str, int, int | None], ...]] = (
    ("<1d", 0, 1), ("1-7d", 1, 7), ("7-14d", 7, 14), ("14-30d", 14, 30), (">30d", 30, None))
"""(label, lower, upper) in days of expiry age; a row is in a bucket when lower < age <= upper."""



def _bucket_filter(lower: int, upper: int | None) -> str:
    # age > lower  <=>  expires_at < as_of - lower;  age <= upper  <=>  expires_at >= as_of - upper
    cond = f"expires_at < $1 - interval '{lower} days'"
    if upper is not None:
        cond += f" AND expires_at >= $1 - interval '{upper} days'"
    return f"count(*) FILTER (WHERE {cond})"


_METRICS_SQL = (
    "SELECT count(*), count(*) FILTER (WHERE expires_at IS NULL), "
    "count(*) FILTER (WHERE expires_at < $1), count(*) FILTER (WHERE expires_at < $2), "
    + ", ".join(_bucket_filter(lo, hi) for _, lo, hi in AGE_BUCKETS)
    + " FROM whatsapp_keys")
_BY_TYPE_SQL = ("SELECT key_type, count(*), count(*) FILTER (WHERE expires_at < $1), "
                "count(*) FILTER (WHERE expires_at < $2) FROM whatsapp_keys "
                "GROUP BY key_type ORDER BY key_type")
_ORDER: Final = "ORDER BY expires_at, company_id, key_type, key_id"
_WOULD_DELETE_SQL = (f"SELECT key_type, count(*) FROM (SELECT key_type FROM whatsapp_keys "
                     f"WHERE expires_at < $1 {_ORDER} LIMIT $2) v GROUP BY key_type")
_DELETE_SQL = f"""
WITH victims AS (
    SELECT company_id, key_type, key_id FROM whatsapp_keys
    WHERE expires_at < $1 {_ORDER} LIMIT $2 FOR UPDATE SKIP LOCKED)
DELETE FROM whatsapp_keys k USING victims v
WHERE k.company_id = v.company_id AND k.key_type = v.key_type AND k.key_id = v.key_id
  AND k.expires_at < $1
RETURNING {{returning}}
"""
_RETURN_TYPE = "k.key_type"
_RETURN_ALL = ("k.company_id, k.key_type, k.key_id, k.value::text AS value, k.updated_at, "
               "k.expires_at")


@dataclass(frozen=True)
class TableMetrics:
    """Row counts and sizes of the key table at one moment (see module docstring for terms)."""

    total_keys: int
    no_expiry_keys: int
    expired_keys: int
    eligible_keys: int
    age_buckets: dict[str, int]
    by_type: dict[str, dict[str, int]]
    """{type: {"total", "expired", "eligible"}}"""
    auth_rows: int
    sizes: TableSizes

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["sizes"] = self.sizes.to_json()
        return out


@dataclass(frozen=True)
class CleanupResult:
    as_of: dt.datetime
    cutoff: dt.datetime
    """Rows with `expires_at` before this are eligible (`as_of - retention`)."""
    retention_days: float
    dry_run: bool
    max_delete: int | None
    batch_size: int
    deleted: int
    """Rows deleted; in a dry run, rows that would be deleted."""
    deleted_by_type: dict[str, int]
    batches: int
    archive_path: str | None
    archived_rows: int
    before: TableMetrics
    after: TableMetrics | None
    """None in a dry run (nothing changed)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(), "cutoff": self.cutoff.isoformat(),
            "retention_days": self.retention_days, "dry_run": self.dry_run,
            "max_delete": self.max_delete, "batch_size": self.batch_size,
            "deleted": self.deleted, "deleted_by_type": dict(self.deleted_by_type),
            "batches": self.batches, "archive_path": self.archive_path,
            "archived_rows": self.archived_rows, "before": self.before.to_json(),
            "after": None if self.after is None else self.after.to_json()}


async def collect_metrics(conn: asyncpg.Connection, as_of: dt.datetime,
                          cutoff: dt.datetime) -> TableMetrics:
    row = await conn.fetchrow(_METRICS_SQL, as_of, cutoff)
    total, no_expiry, expired, eligible, *buckets = row
    by_type = {r[0]: {"total": r[1], "expired": r[2], "eligible": r[3]}
               for r in await conn.fetch(_BY_TYPE_SQL, as_of, cutoff)}
    auth_rows = await conn.fetchval("SELECT count(*) FROM whatsapp_auth")
    return TableMetrics(total, no_expiry, expired, eligible,
                        {label: n for (label, _, _), n in zip(AGE_BUCKETS, buckets, strict=True)},
                        by_type, auth_rows, await table_sizes(conn))


def _open_archive(path: Path) -> BinaryIO:
    """Create the archive (never reuse one: it would mix runs), mode 0600, fsync its directory."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
    except FileExistsError:
        raise ConfigError(f"archive file {path} already exists; nothing was deleted",
                          hint="give each run its own archive file, e.g. "
                          "cleanup-$(date +%F).jsonl") from None
    except OSError as exc:
        raise ConfigError(f"cannot create archive file {path}: {exc.strerror}; nothing was "
                          "deleted", hint="choose a writable path") from None
    os.fchmod(fd, 0o600)  # whatever the umask: the archive holds private keys
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return os.fdopen(fd, "wb")


def _archive_line(row: asyncpg.Record) -> bytes:
    record = {"company_id": row["company_id"], "key_type": row["key_type"],
              "key_id": row["key_id"], "updated_at": row["updated_at"].isoformat(),
              "expires_at": row["expires_at"].isoformat(), "value": json.loads(row["value"])}
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


def _check_args(retention_days: float, max_delete: int | None, batch_size: int) -> None:
    if not retention_days >= 0:
        raise ConfigError(f"retention must be 0 or more days, got {retention_days}",
                          hint="the origin system keeps expired keys 30 days")
    if max_delete is not None and max_delete < 0:
        raise ConfigError(f"max-delete must be 0 or more, got {max_delete}")
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")


async def cleanup_expired_keys(
        store: PostgresAuthStore, *, retention_days: float = DEFAULT_RETENTION_DAYS,
        dry_run: bool = False, max_delete: int | None = None,
        archive: str | Path | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
        as_of: dt.datetime | None = None) -> CleanupResult:
    """Run the cleanup job (see module docstring). A dry run writes nothing, archive included.

    `as_of` pins the reference time (tests, reproducible reports); default: database `now()`.
    """
    _check_args(retention_days, max_delete, batch_size)
    try:
        async with store.connection() as conn:
            await require_tables(conn)
            if as_of is None:
                as_of = await conn.fetchval("SELECT now()")
            cutoff = as_of - dt.timedelta(days=retention_days)
            before = await collect_metrics(conn, as_of, cutoff)
            limit = before.eligible_keys if max_delete is None else max_delete
            if dry_run:
                would = dict(await conn.fetch(_WOULD_DELETE_SQL, cutoff, limit))
                return CleanupResult(as_of, cutoff, retention_days, True, max_delete,
                                     batch_size, sum(would.values()), dict(sorted(would.items())),
                                     0, None, 0, before, None)
            out = _open_archive(Path(archive)) if archive is not None else None
            try:
                deleted, batches, archived = await _delete_batches(
                    conn, cutoff, max_delete, batch_size, out)
            finally:
                if out is not None:
                    out.close()
            after = await collect_metrics(conn, as_of, cutoff)
    except DB_ERRORS as exc:
        raise classify(exc, operation="cleanup", company_id=None, sent=not dry_run,
                       note="Batches committed before the failure stay deleted (and archived); "
                       "a new run picks up the rest") from exc
    return CleanupResult(as_of, cutoff, retention_days, False, max_delete, batch_size,
                         sum(deleted.values()), dict(sorted(deleted.items())), batches,
                         None if archive is None else str(archive), archived, before, after)


async def _delete_batches(conn: asyncpg.Connection, cutoff: dt.datetime,
                          max_delete: int | None, batch_size: int,
                          out: BinaryIO | None) -> tuple[Counter[str], int, int]:
    sql = _DELETE_SQL.format(returning=_RETURN_ALL if out is not None else _RETURN_TYPE)
    deleted: Counter[str] = Counter()
    batches = archived = 0
    remaining = max_delete
    while remaining is None or remaining > 0:
        n = batch_size if remaining is None else min(batch_size, remaining)
        async with conn.transaction():
            rows = await conn.fetch(sql, cutoff, n)
            if out is not None and rows:
                out.write(b"".join(_archive_line(r) for r in rows))
                out.flush()
                os.fsync(out.fileno())  # on disk before the delete commits
                archived += len(rows)
        batches += 1
        deleted.update(r["key_type"] for r in rows)
        if remaining is not None:
            remaining -= len(rows)
        if len(rows) < n:
            break
    return deleted, batches, archived
