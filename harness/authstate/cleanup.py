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

*Per-type policy* (`CleanupPolicy`): cleanup deletes only key types whose loss the protocol
repairs by itself (sessions, sender keys and their caches: see `DEFAULT_POLICY` for the reason
per type). Types whose loss breaks a session -- unconsumed pre-keys still published to
WhatsApp, app-state sync keys, identity keys, LID mappings -- are kept whatever their
`expires_at`, unless an explicit override says otherwise (`CleanupPolicy.risky()` names them so
the CLI can warn). A sender key is due only once its group's sender-key-memory is due too
(`due_sql`): deleting our key while the memory of who holds it stays breaks the group.
`eligible` counts deletable types only; rows of kept types past the retention are counted as
`kept_by_policy`. `health` uses the same policy and retention, so the
two commands agree on what is due for deletion.

*Schema without `expires_at`* (an origin-style table): expiry is derived as the store would
have set it, `updated_at + TTL(key_type)`; without `updated_at` either nothing can be judged
and cleanup stops with the exact `ALTER TABLE` to run (it never alters a table itself).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Final

import asyncpg

from harness.authstate.db_errors import DB_ERRORS, classify
from harness.authstate.dbinfo import TableSizes, require_tables, table_sizes
from harness.authstate.key_types import (
    APP_STATE_SYNC_KEY,
    APP_STATE_SYNC_VERSION,
    DEVICE_LIST,
    IDENTITY_KEY,
    KEY_TYPES,
    LID_MAPPING,
    PRE_KEY,
    SENDER_KEY,
    SENDER_KEY_MEMORY,
    SESSION,
    TCTOKEN,
    ttl_seconds,
)
from harness.authstate.store import PostgresAuthStore
from harness.errors import ConfigError

DEFAULT_RETENTION_DAYS: Final = 30
DEFAULT_BATCH_SIZE: Final = 5000
MAX_RETENTION_DAYS: Final = 36_500  # 100 years: beyond it the cutoff leaves PostgreSQL's range
MAX_BATCH_SIZE: Final = 1_000_000

DEFAULT_POLICY: Final[Mapping[str, tuple[bool, str]]] = {
    SESSION: (True, "a lost session is rebuilt by the protocol: the peer's next message is "
              "a pre-key message or a retry receipt makes Baileys start a new one; idle "
              "past TTL + retention means neither side used it for weeks"),
    SENDER_KEY: (True, "a lost group sender key is re-sent by its owner on a retry receipt "
                 "(our own is regenerated and distributed on the next group send)"),
    SENDER_KEY_MEMORY: (True, "only records which devices already got our sender key; losing "
                        "it makes Baileys distribute the key again (more traffic, no break)"),
    DEVICE_LIST: (True, "a cache of a contact's devices; Baileys fetches it again (usync)"),
    TCTOKEN: (True, "a privacy token the server re-issues; an idle one has lapsed anyway"),
    PRE_KEY: (False, "an unconsumed pre-key is still published on WhatsApp's server: a "
              "contact may start a session with it at any time, and without it that "
              "message cannot be decrypted. Baileys deletes pre-keys itself when used; "
              "expires_at is only their write time + 7 days"),
    APP_STATE_SYNC_KEY: (False, "needed to decrypt later app-state patches (contacts, "
                         "chats, labels) encrypted with it; the server does not resend it"),
    APP_STATE_SYNC_VERSION: (False, "the app-state collections' version and hash; losing "
                             "it forces a full resync and can fail the hash checks"),
    IDENTITY_KEY: (False, "a contact's identity key (trust on first use): losing it "
                   "silently accepts a changed identity and breaks session verification"),
    LID_MAPPING: (False, "maps LID addresses to phone numbers; Baileys cannot always learn "
                  "it again, and messages addressed by LID then go to the wrong chat"),
}
"""Key type -> (deleted when idle past TTL + retention?, why). Types Baileys may add later are
kept: a type nobody has judged is never deleted by default."""
UNKNOWN_TYPE_REASON: Final = "a type this policy does not know: kept until judged"


@dataclass(frozen=True)
class CleanupPolicy:
    """Which key types cleanup may delete (see `DEFAULT_POLICY`); `overrides` win."""

    overrides: Mapping[str, bool] = field(default_factory=dict)

    @classmethod
    def parse(cls, specs: Sequence[str]) -> CleanupPolicy:
        """From `TYPE=delete|keep` strings (`all=delete` is the origin's delete-every-type)."""
        overrides: dict[str, bool] = {}
        for spec in specs:
            key_type, _, action = spec.partition("=")
            key_type, action = key_type.strip(), action.strip().lower()
            if action not in ("delete", "keep"):
                raise ConfigError(f"--type-policy {spec!r}: the action must be delete or keep",
                                  hint="e.g. --type-policy device-list=keep")
            if key_type == "all":
                overrides.update(dict.fromkeys(KEY_TYPES, action == "delete"))
            elif key_type in KEY_TYPES:
                overrides[key_type] = action == "delete"
            else:
                raise ConfigError(f"--type-policy {spec!r}: unknown key type {key_type!r}",
                                  hint=f"key types: {', '.join(KEY_TYPES)} (or all)")
        return cls(overrides)

    def deletes(self, key_type: str) -> bool:
        if key_type in self.overrides:
            return self.overrides[key_type]
        return DEFAULT_POLICY.get(key_type, (False, ""))[0]

    def reason(self, key_type: str) -> str:
        return DEFAULT_POLICY.get(key_type, (False, UNKNOWN_TYPE_REASON))[1]

    def deletable(self, key_types: Iterable[str] = KEY_TYPES) -> list[str]:
        return [t for t in key_types if self.deletes(t)]

    def risky(self) -> list[str]:
        """Types kept by default that this policy deletes: their loss can break sessions."""
        return [t for t in KEY_TYPES if self.deletes(t) and not DEFAULT_POLICY[t][0]]

    def describe(self, key_types: Iterable[str] = ()) -> list[dict[str, Any]]:
        """One entry per type (known ones, then any other seen in the table)."""
        types = list(dict.fromkeys([*KEY_TYPES, *key_types]))
        return [{"key_type": t, "action": "delete" if self.deletes(t) else "keep",
                 "overridden": t in self.overrides, "reason": self.reason(t)} for t in types]

    def to_json(self) -> dict[str, Any]:
        return {"deletes": self.deletable(), "overrides": {
            t: "delete" if d else "keep" for t, d in self.overrides.items()}}


DEFAULT_CLEANUP_POLICY: Final = CleanupPolicy()


def retention_error(retention_days: float) -> str | None:
    """Why `retention_days` is unusable, or None (shared by cleanup and health)."""
    if not (isinstance(retention_days, int | float) and math.isfinite(retention_days)
            and 0 <= retention_days <= MAX_RETENTION_DAYS):
        return (f"retention must be a number of days from 0 to {MAX_RETENTION_DAYS}, "
                f"got {retention_days}")
    return None


async def key_columns(conn: asyncpg.Connection, table: str = "whatsapp_keys") -> set[str]:
    """Column names of an auth-state table as the search_path resolves it."""
    rows = await conn.fetch("SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass "
                            "AND attnum > 0 AND NOT attisdropped", table)
    return {r[0] for r in rows}


def expiry_sql(columns: set[str]) -> str | None:
    """The SQL expression of a row's expiry: `expires_at`, else what the store would have set
    (`updated_at + TTL(key_type)`), else None (nothing can be judged)."""
    if "expires_at" in columns:
        return "expires_at"
    if "updated_at" not in columns:
        return None
    ttls: dict[int, list[str]] = {}
    for t in KEY_TYPES:
        ttls.setdefault(ttl_seconds(t), []).append(t)
    default = ttl_seconds("a type baileys may add later")
    cases = " ".join(f"WHEN key_type IN ({', '.join(repr(t) for t in types)}) THEN "
                     f"updated_at + interval '{secs} seconds'"
                     for secs, types in sorted(ttls.items()) if secs != default)
    return f"(CASE {cases} ELSE updated_at + interval '{default} seconds' END)"


def _memory_expiry(exp: str) -> str:
    """The expiry of a sender-key-memory row `m`, in the same terms as `exp`."""
    if exp == "expires_at":
        return "m.expires_at"
    return f"m.updated_at + interval '{ttl_seconds('sender-key-memory')} seconds'"


def due_sql(exp: str, cutoff: str, table: str = "whatsapp_keys") -> str:
    """SQL: the row of `table` (a name or alias) is due for cleanup at `cutoff` (a parameter).

    Past the retention (`exp < cutoff`) -- except a sender key whose group's sender-key-memory
    row is not due yet: the memory tells Baileys which devices already hold our sender key, so
    deleting the key while the memory stays makes Baileys send with a new key to nobody (every
    recipient then needs a retry receipt). Both TTLs differ (7 and 14 days), so without this
    rule an idle group's key would go about a week before its memory. The key goes once the
    memory is due too (in the same run, since both are deletable by default).
    """
    col = exp if table == "whatsapp_keys" else exp.replace(
        "expires_at", f"{table}.expires_at").replace("updated_at", f"{table}.updated_at") \
        .replace("key_type", f"{table}.key_type")
    mem = _memory_expiry(exp)
    return (f"({col} < {cutoff} AND NOT ({table}.key_type = 'sender-key' AND EXISTS ("
            f"SELECT 1 FROM whatsapp_keys m WHERE m.company_id = {table}.company_id "
            f"AND m.key_type = 'sender-key-memory' "
            f"AND m.key_id = split_part({table}.key_id, '::', 1) "
            f"AND ({mem} IS NULL OR {mem} >= {cutoff}))))")


def missing_expiry_error(table: str = "whatsapp_keys") -> ConfigError:
    return ConfigError(
        f"{table} has neither expires_at nor updated_at: no row's expiry can be judged; "
        "nothing was read or changed",
        hint=f"add the column (the store fills it on every write from then on): ALTER TABLE "
             f"{table} ADD COLUMN expires_at timestamptz; then CREATE INDEX CONCURRENTLY "
             f"whatsapp_keys_expires_at_idx ON {table} (expires_at) -- or let the store add "
             "both by opening it once with migration (import-files does)")

AGE_BUCKETS: Final[tuple[tuple[str, int, int | None], ...]] = (
    ("<1d", 0, 1), ("1-7d", 1, 7), ("7-14d", 7, 14), ("14-30d", 14, 30), (">30d", 30, None))
"""(label, lower, upper) in days of expiry age; a row is in a bucket when lower < age <= upper."""



def _bucket_filter(exp: str, lower: int, upper: int | None) -> str:
    # age > lower  <=>  expiry < as_of - lower;  age <= upper  <=>  expiry >= as_of - upper
    cond = f"{exp} < $1 - interval '{lower} days'"
    if upper is not None:
        cond += f" AND {exp} >= $1 - interval '{upper} days'"
    return f"count(*) FILTER (WHERE {cond})"


def _metrics_sql(exp: str) -> str:
    """$1 as_of, $2 cutoff, $3 deletable types."""
    return ("SELECT count(*), count(*) FILTER (WHERE " + exp + " IS NULL), "
            f"count(*) FILTER (WHERE {exp} < $1), "
            f"count(*) FILTER (WHERE {due_sql(exp, '$2')} AND key_type = ANY($3::text[])), "
            f"count(*) FILTER (WHERE {due_sql(exp, '$2')} AND NOT key_type = ANY($3::text[])), "
            + ", ".join(_bucket_filter(exp, lo, hi) for _, lo, hi in AGE_BUCKETS)
            + " FROM whatsapp_keys")


def _by_type_sql(exp: str) -> str:
    return (f"SELECT key_type, count(*), count(*) FILTER (WHERE {exp} < $1), "
            f"count(*) FILTER (WHERE {due_sql(exp, '$2')}) FROM whatsapp_keys "
            "GROUP BY key_type ORDER BY key_type")


def _order(exp: str) -> str:
    return f"ORDER BY {exp}, company_id, key_type, key_id"


def _would_delete_sql(exp: str) -> str:
    return (f"SELECT key_type, count(*) FROM (SELECT key_type FROM whatsapp_keys "
            f"WHERE {due_sql(exp, '$1')} AND key_type = ANY($3::text[]) {_order(exp)} "
            "LIMIT $2) v "
            "GROUP BY key_type")


def _delete_sql(exp: str, returning: str) -> str:
    return f"""
WITH victims AS (
    SELECT company_id, key_type, key_id FROM whatsapp_keys
    WHERE {due_sql(exp, '$1')} AND key_type = ANY($3::text[]) {_order(exp)} LIMIT $2
    FOR UPDATE SKIP LOCKED)
DELETE FROM whatsapp_keys k USING victims v
WHERE k.company_id = v.company_id AND k.key_type = v.key_type AND k.key_id = v.key_id
  AND {due_sql(exp, '$1', 'k')}
RETURNING {returning}
"""


_RETURN_TYPE = "k.key_type"
_RETURN_ALL = ("k.company_id, k.key_type, k.key_id, k.value::text AS value, k.updated_at, "
               "{exp} AS expires_at")


@dataclass(frozen=True)
class TableMetrics:
    """Row counts and sizes of the key table at one moment (see module docstring for terms)."""

    total_keys: int
    no_expiry_keys: int
    expired_keys: int
    eligible_keys: int
    """Rows of types the policy deletes, expired longer than the retention."""
    kept_by_policy: int
    """Rows of types the policy keeps, expired longer than the retention (never deleted)."""
    age_buckets: dict[str, int]
    by_type: dict[str, dict[str, Any]]
    """{type: {"total", "expired", "past_retention", "eligible", "policy"}}"""
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
    policy: CleanupPolicy = DEFAULT_CLEANUP_POLICY
    expiry_source: str = "expires_at"
    """`expires_at`, or `updated_at + TTL` on a table without that column."""

    def to_json(self) -> dict[str, Any]:
        counted = "would_delete" if self.dry_run else "deleted"
        return {
            "as_of": self.as_of.isoformat(), "cutoff": self.cutoff.isoformat(),
            "retention_days": self.retention_days, "dry_run": self.dry_run,
            "max_delete": self.max_delete, "batch_size": self.batch_size,
            counted: self.deleted, f"{counted}_by_type": dict(self.deleted_by_type),
            "batches": self.batches, "archive_path": self.archive_path,
            "archived_rows": self.archived_rows, "policy": self.policy.to_json(),
            "expiry_source": self.expiry_source, "before": self.before.to_json(),
            "after": None if self.after is None else self.after.to_json()}


async def collect_metrics(conn: asyncpg.Connection, as_of: dt.datetime, cutoff: dt.datetime,
                          policy: CleanupPolicy = DEFAULT_CLEANUP_POLICY,
                          exp: str = "expires_at") -> TableMetrics:
    types = await conn.fetch(_by_type_sql(exp), as_of, cutoff)
    deletable = policy.deletable([r[0] for r in types])
    row = await conn.fetchrow(_metrics_sql(exp), as_of, cutoff, deletable)
    total, no_expiry, expired, eligible, kept, *buckets = row
    by_type = {r[0]: {"total": r[1], "expired": r[2], "past_retention": r[3],
                      "eligible": r[3] if policy.deletes(r[0]) else 0,
                      "policy": "delete" if policy.deletes(r[0]) else "keep"} for r in types}
    auth_rows = await conn.fetchval("SELECT count(*) FROM whatsapp_auth")
    return TableMetrics(total, no_expiry, expired, eligible, kept,
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


def check_args(retention_days: float, max_delete: int | None, batch_size: int) -> None:
    """Refuse unusable arguments before any I/O (the CLI calls it before connecting)."""
    problem = retention_error(retention_days)
    if problem:
        raise ConfigError(problem, hint="the origin system keeps expired keys 30 days")
    if max_delete is not None and max_delete < 0:
        raise ConfigError(f"max-delete must be 0 or more, got {max_delete}")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ConfigError(f"batch size must be from 1 to {MAX_BATCH_SIZE}, got {batch_size}",
                          hint="short batches keep each DELETE's locks brief")


@dataclass
class _Progress:
    """What the batch loop has committed so far (reported when a later batch fails)."""

    deleted: Counter[str] = field(default_factory=Counter)
    batches: int = 0
    archived: int = 0

    def note(self) -> str:
        n = sum(self.deleted.values())
        if not n:
            return "No row had been deleted yet; a new run starts over"
        return (f"{n} row(s) had already been deleted in {self.batches} committed batch(es) "
                f"({', '.join(f'{t} {c}' for t, c in sorted(self.deleted.items()))}) and stay "
                "deleted" + (" (and archived)" if self.archived else "")
                + "; a new run picks up the rest")


async def cleanup_expired_keys(
        store: PostgresAuthStore, *, retention_days: float = DEFAULT_RETENTION_DAYS,
        dry_run: bool = False, max_delete: int | None = None,
        archive: str | Path | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
        as_of: dt.datetime | None = None,
        policy: CleanupPolicy = DEFAULT_CLEANUP_POLICY) -> CleanupResult:
    """Run the cleanup job (see module docstring). A dry run writes nothing, archive included.

    `as_of` pins the reference time (tests, reproducible reports); default: database `now()`.
    """
    check_args(retention_days, max_delete, batch_size)
    progress = _Progress()
    try:
        async with store.connection() as conn:
            await require_tables(conn)
            exp = expiry_sql(await key_columns(conn))
            if exp is None:
                raise missing_expiry_error()
            if as_of is None:
                as_of = await conn.fetchval("SELECT now()")
            cutoff = as_of - dt.timedelta(days=retention_days)
            before = await collect_metrics(conn, as_of, cutoff, policy, exp)
            deletable = policy.deletable(before.by_type)
            limit = before.eligible_keys if max_delete is None else max_delete
            source = "expires_at" if exp == "expires_at" else "updated_at + TTL"
            if dry_run:
                would = dict(await conn.fetch(_would_delete_sql(exp), cutoff, limit, deletable))
                return CleanupResult(as_of, cutoff, retention_days, True, max_delete,
                                     batch_size, sum(would.values()), dict(sorted(would.items())),
                                     0, None, 0, before, None, policy, source)
            out = _open_archive(Path(archive)) if archive is not None else None
            try:
                await _delete_batches(conn, cutoff, max_delete, batch_size, out, exp, deletable,
                                      progress)
            finally:
                if out is not None:
                    out.close()
            after = await collect_metrics(conn, as_of, cutoff, policy, exp)
    except DB_ERRORS as exc:
        raise classify(exc, operation="cleanup", company_id=None, sent=not dry_run,
                       note=None if dry_run else progress.note()) from exc
    return CleanupResult(as_of, cutoff, retention_days, False, max_delete, batch_size,
                         sum(progress.deleted.values()), dict(sorted(progress.deleted.items())),
                         progress.batches, None if archive is None else str(archive),
                         progress.archived, before, after, policy, source)


async def _delete_batches(conn: asyncpg.Connection, cutoff: dt.datetime,
                          max_delete: int | None, batch_size: int, out: BinaryIO | None,
                          exp: str, deletable: list[str], progress: _Progress) -> None:
    returning = _RETURN_ALL.format(exp=exp.replace("updated_at", "k.updated_at").replace(
        "expires_at", "k.expires_at").replace("key_type", "k.key_type")) \
        if out is not None else _RETURN_TYPE
    sql = _delete_sql(exp, returning)
    remaining = max_delete
    while remaining is None or remaining > 0:
        n = batch_size if remaining is None else min(batch_size, remaining)
        async with conn.transaction():
            rows = await conn.fetch(sql, cutoff, n, deletable)
            if out is not None and rows:
                out.write(b"".join(_archive_line(r) for r in rows))
                out.flush()
                os.fsync(out.fileno())  # on disk before the delete commits
        # committed: only now do these rows count as deleted
        progress.batches += 1
        progress.archived += len(rows) if out is not None else 0
        progress.deleted.update(r["key_type"] for r in rows)
        if remaining is not None:
            remaining -= len(rows)
        if len(rows) < n:
            break
