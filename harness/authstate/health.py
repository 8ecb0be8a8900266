"""The origin system's health checks, with its thresholds, for one company or the whole store.

Statuses: `ok` < `warning` < `unhealthy`; the report's status is its worst check.

- auth_row: with a company, no creds row -> unhealthy (the service would start with fresh
  creds: QR re-pairing). Across companies: a company that has keys but no creds row ->
  unhealthy (its creds were lost); no creds row at all -> warning.
- key_freshness (age of the newest key update): < 24 h ok; 24 h <= age < 48 h warning;
  >= 48 h unhealthy; no keys at all -> warning.
- expired_ratio: keys *due for cleanup* / all keys > 50 % -> unhealthy (exactly 50 % is ok).
- expired_count: more than 500 keys due for cleanup -> warning.
- kept_types: rows of types cleanup keeps (pre-keys, app-state sync keys, identity keys, LID
  mappings ...) more than the retention past their `expires_at` -> warning: a cleanup by
  expiry alone (the origin system's job, or a `--type-policy` override) would delete them now
  and break sessions.
- pool_utilization: the server's client connections / the connections it allows
  (max_connections - superuser_reserved_connections) above 80 % -> warning, with the count per
  application_name (which service holds them).
- query_latency: p95 > 200 ms or p99 > 500 ms (the origin's targets; p99 > 500 ms = "slow")
  -> warning.

"Expired" means what `cleanup` means (`harness.authstate.cleanup`): a row is *due for
cleanup* when its type is one the cleanup policy deletes and it expired (database clock) more
than the retention (default 30 days) ago; those are exactly the rows `cleanup` with the same
policy and retention deletes, so running it clears the finding. Rows that expired more
recently are reported as figures, not judged: cleanup keeps them on purpose. An idle account's
pre-keys therefore never make it unhealthy: their type is kept, and they only raise
`kept_types` once more than the retention past expiry. Expiry is `expires_at`, or
`updated_at + TTL` on a table without that column; a check whose column is missing says which
and how to add it (the commands never alter a table).

Freshness for all companies judges the newest update anywhere (is the service writing at
all?); how many companies are stale 24-48 h and >= 48 h is reported as figures, since one idle
tenant should not fail the whole service. Latency is measured on `samples` point reads of one
existing key through the store (Baileys' most frequent operation: `keys.get` of one id),
falling back to a creds read, then to `SELECT 1`. No figure carries a key value or key id.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import asyncpg

from harness.authstate.cleanup import (
    DEFAULT_CLEANUP_POLICY,
    DEFAULT_RETENTION_DAYS,
    CleanupPolicy,
    due_sql,
    expiry_sql,
    key_columns,
    retention_error,
)
from harness.authstate.company import validate_company_id
from harness.authstate.db_errors import DB_ERRORS, classify
from harness.authstate.dbinfo import require_tables
from harness.authstate.store import PostgresAuthStore
from harness.errors import ConfigError

Status = Literal["ok", "warning", "unhealthy"]
_RANK: Final[dict[str, int]] = {"ok": 0, "warning": 1, "unhealthy": 2}
DEFAULT_SAMPLES: Final = 50
MAX_SAMPLES: Final = 100_000


@dataclass(frozen=True)
class Thresholds:
    """The origin system's figures; override for stricter gates."""

    freshness_warning: dt.timedelta = dt.timedelta(hours=24)
    freshness_unhealthy: dt.timedelta = dt.timedelta(hours=48)
    expired_ratio_unhealthy: float = 0.5
    expired_count_warning: int = 500
    pool_utilization_warning: float = 0.8
    p95_target_ms: float = 200.0
    p99_target_ms: float = 500.0
    slow_query_ms: float = 500.0


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: Status
    message: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message,
                "figures": _jsonable(self.figures)}


@dataclass(frozen=True)
class HealthReport:
    status: Status
    company_id: str | None
    as_of: dt.datetime
    checks: list[CheckResult]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "company_id": self.company_id,
                "as_of": self.as_of.isoformat(), "checks": [c.to_json() for c in self.checks]}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return value


def worst(statuses: Sequence[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default="ok")


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _companies(count: int) -> str:
    return "1 company has" if count == 1 else f"{count} companies have"


def _hours(delta: dt.timedelta) -> str:
    return f"{delta.total_seconds() / 3600:.1f} h"


# -- classification: pure functions of figures, so every boundary has a test ---------------------
def classify_auth_row(*, company_id: str | None, exists: bool = False, auth_rows: int = 0,
                      orphan_companies: int = 0) -> tuple[Status, str]:
    if company_id is not None:
        if exists:
            return "ok", f"creds row present for {company_id!r}"
        return "unhealthy", (f"no creds row for {company_id!r}: the service would start with "
                             "fresh creds and the account needs QR re-pairing")
    if orphan_companies:
        return "unhealthy", (f"{_companies(orphan_companies)} keys but no creds row "
                             "(creds lost: re-pair those accounts, or restore their creds)")
    if auth_rows == 0:
        return "warning", "no company has creds in this database"
    return "ok", f"{_companies(auth_rows)} creds"


def classify_freshness(age: dt.timedelta | None, t: Thresholds = Thresholds()
                       ) -> tuple[Status, str]:
    if age is None:
        return "warning", "no keys at all: nothing has been written"
    what_to_do = ("is the service connected and writing? (an account without traffic writes "
                  "nothing either: check its connection before re-pairing)")
    if age >= t.freshness_unhealthy:
        return "unhealthy", (f"no key updated for {_hours(age)} "
                             f"(>= {_hours(t.freshness_unhealthy)}): {what_to_do}")
    if age >= t.freshness_warning:
        return "warning", (f"no key updated for {_hours(age)} "
                           f"(>= {_hours(t.freshness_warning)}): {what_to_do}")
    return "ok", f"newest key update {_hours(age)} ago"


def classify_expired_ratio(due: int, total: int, t: Thresholds = Thresholds(), *,
                           retention_days: float = DEFAULT_RETENTION_DAYS,
                           within_retention: int = 0) -> tuple[Status, str]:
    """`due`: rows cleanup (same policy and retention) would delete; `within_retention`:
    rows of deletable types that expired more recently (kept on purpose, not judged)."""
    ratio = due / total if total else 0.0
    text = (f"{due} of {_n(total, 'key')} ({ratio:.1%}) "
            f"{'is' if due == 1 else 'are'} more than {retention_days:g} days past expiry and "
            "due for cleanup")
    recent = (f"; {within_retention} more expired within the retention (cleanup keeps them "
              "until it passes)") if within_retention else ""
    if ratio > t.expired_ratio_unhealthy:
        return "unhealthy", (f"{text}, more than {t.expired_ratio_unhealthy:.0%}: the cleanup "
                             "job is not running; run `authstate-harness cleanup` (and "
                             f"schedule it daily){recent}")
    return "ok", text + recent


def classify_expired_count(due: int, t: Thresholds = Thresholds()) -> tuple[Status, str]:
    if due > t.expired_count_warning:
        return "warning", (f"{_n(due, 'key')} due for cleanup (> {t.expired_count_warning}): "
                           "run `authstate-harness cleanup`")
    return "ok", f"{_n(due, 'key')} due for cleanup"


def classify_kept_types(past_retention: dict[str, int], expired: dict[str, int],
                        policy: CleanupPolicy = DEFAULT_CLEANUP_POLICY, *,
                        retention_days: float = DEFAULT_RETENTION_DAYS) -> tuple[Status, str]:
    """Rows of types whose loss breaks sessions, by how long past `expires_at` they are.

    Expired within the retention: normal (an unconsumed pre-key is never rewritten), ok.
    Past the retention: a cleanup by expiry alone would delete them now -> warning, naming
    whether *this* policy would (an override) or only another job could."""
    def listing(counts: dict[str, int]) -> str:
        return ", ".join(f"{n} {t}" for t, n in sorted(counts.items()) if n)

    risky = {t: n for t, n in past_retention.items() if n and policy.deletes(t)}
    if risky:
        return "warning", (f"this cleanup policy deletes types whose loss breaks sessions: "
                           f"{listing(risky)} row(s) would be deleted now; drop the "
                           "--type-policy override unless you are sure")
    if any(past_retention.values()):
        return "warning", (f"{listing(past_retention)} row(s) are more than "
                           f"{retention_days:g} days past expires_at: `authstate-harness "
                           "cleanup` keeps these types (their loss breaks sessions), but a "
                           "cleanup that deletes by expiry alone (like the origin system's "
                           "job) would delete them now: make sure no such job runs")
    if any(expired.values()):
        return "ok", (f"{listing(expired)} row(s) past expires_at, kept by cleanup's policy "
                      "(normal: e.g. an unused pre-key is never rewritten); nothing to do")
    return "ok", "no kept-type row past expires_at"


def classify_pool(server_in_use: int, server_allowed: int, by_application: dict[str, int]
                  | None = None, t: Thresholds = Thresholds()) -> tuple[Status, str]:
    """Server connections (client backends) against what the server allows non-superusers."""
    share = server_in_use / server_allowed if server_allowed else 0.0
    apps = sorted((by_application or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    who = ("; by application: " + ", ".join(f"{a or '(unnamed)'} {n}" for a, n in apps[:5])
           + (f", {len(apps) - 5} more" if len(apps) > 5 else "")) if apps else ""
    text = (f"server connections {server_in_use}/{server_allowed} ({share:.0%}, this check's "
            f"own included){who}")
    if share > t.pool_utilization_warning:
        return "warning", (f"{text}: above {t.pool_utilization_warning:.0%}; new connections "
                           "will soon be refused (53300): lower the services' pool sizes or "
                           "raise max_connections")
    return "ok", text


def percentile(samples_ms: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p99 is a latency that happened)."""
    if not samples_ms:
        raise ValueError("no samples")
    ordered = sorted(samples_ms)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def classify_latency(samples_ms: Sequence[float], t: Thresholds = Thresholds()
                     ) -> tuple[Status, str, dict[str, float]]:
    figures = {"samples": len(samples_ms), "p50_ms": percentile(samples_ms, 50),
               "p95_ms": percentile(samples_ms, 95), "p99_ms": percentile(samples_ms, 99),
               "max_ms": max(samples_ms)}
    text = (f"p50 {figures['p50_ms']:.2f} ms, p95 {figures['p95_ms']:.2f} ms, "
            f"p99 {figures['p99_ms']:.2f} ms over {len(samples_ms)} reads")
    problems = []
    if figures["p99_ms"] > t.slow_query_ms:
        problems.append(f"slow: p99 above {t.slow_query_ms:.0f} ms")
    elif figures["p99_ms"] > t.p99_target_ms:
        problems.append(f"p99 above the {t.p99_target_ms:.0f} ms target")
    if figures["p95_ms"] > t.p95_target_ms:
        problems.append(f"p95 above the {t.p95_target_ms:.0f} ms target")
    if problems:
        return "warning", f"{text}: {'; '.join(problems)}", figures
    return "ok", text, figures


# -- the checks against a database ---------------------------------------------------------------
def _scope(company_id: str | None, arg: int) -> str:
    return f" WHERE company_id = ${arg}" if company_id is not None else ""


def _args(company_id: str | None, *args: Any) -> list[Any]:
    return [*args, company_id] if company_id is not None else list(args)


def _cannot_judge(name: str, column: str, add: str) -> CheckResult:
    return CheckResult(name, "warning", (
        f"cannot judge: whatsapp_keys has no {column} column (add it, and the store fills it "
        f"on every write: ALTER TABLE whatsapp_keys ADD COLUMN {column} {add}; or open the "
        "store once with migration, e.g. import-files)"), {"missing_column": column})


async def _auth_row(conn: asyncpg.Connection, company_id: str | None) -> CheckResult:
    if company_id is not None:
        exists = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM whatsapp_auth WHERE company_id = $1)", company_id)
        status, msg = classify_auth_row(company_id=company_id, exists=exists)
        return CheckResult("auth_row", status, msg, {"exists": exists})
    auth_rows = await conn.fetchval("SELECT count(*) FROM whatsapp_auth")
    orphans = await conn.fetchval(
        "SELECT count(DISTINCT company_id) FROM whatsapp_keys k WHERE NOT EXISTS "
        "(SELECT 1 FROM whatsapp_auth a WHERE a.company_id = k.company_id)")
    status, msg = classify_auth_row(company_id=None, auth_rows=auth_rows,
                                    orphan_companies=orphans)
    return CheckResult("auth_row", status, msg,
                       {"auth_rows": auth_rows, "companies_with_keys_but_no_creds": orphans})


async def _freshness(conn: asyncpg.Connection, company_id: str | None, as_of: dt.datetime,
                     t: Thresholds, columns: set[str]) -> CheckResult:
    if "updated_at" not in columns:
        return _cannot_judge("key_freshness", "updated_at", "timestamptz NOT NULL DEFAULT now()")
    newest = await conn.fetchval("SELECT max(updated_at) FROM whatsapp_keys"
                                 + _scope(company_id, 1), *_args(company_id))
    age = None if newest is None else max(as_of - newest, dt.timedelta(0))
    status, msg = classify_freshness(age, t)
    figures: dict[str, Any] = {"newest_update": newest,
                               "age_hours": None if age is None else age.total_seconds() / 3600}
    if company_id is None:
        stale = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE m <= $1::timestamptz - $2::interval "
            "AND m > $1::timestamptz - $3::interval), "
            "count(*) FILTER (WHERE m <= $1::timestamptz - $3::interval) FROM "
            "(SELECT max(updated_at) AS m FROM whatsapp_keys GROUP BY company_id) c",
            as_of, t.freshness_warning, t.freshness_unhealthy)
        figures["companies_stale_warning"], figures["companies_stale_unhealthy"] = stale
        if stale[0] or stale[1]:
            msg += (f"; companies with no key update for {_hours(t.freshness_warning)}-"
                    f"{_hours(t.freshness_unhealthy)}: {stale[0]}, for >= "
                    f"{_hours(t.freshness_unhealthy)}: {stale[1]}")
    return CheckResult("key_freshness", status, msg, figures)


async def _expired(conn: asyncpg.Connection, company_id: str | None, as_of: dt.datetime,
                   t: Thresholds, columns: set[str], policy: CleanupPolicy,
                   retention_days: float) -> list[CheckResult]:
    exp = expiry_sql(columns)
    if exp is None:
        missing = _cannot_judge("expired_ratio", "expires_at", "timestamptz")
        return [missing, CheckResult("expired_count", missing.status, missing.message,
                                     missing.figures),
                CheckResult("kept_types", missing.status, missing.message, missing.figures)]
    cutoff = as_of - dt.timedelta(days=retention_days)
    rows = await conn.fetch(
        f"SELECT key_type, count(*), count(*) FILTER (WHERE {exp} < $1), "
        f"count(*) FILTER (WHERE {due_sql(exp, '$2')}) FROM whatsapp_keys"
        + _scope(company_id, 3) + " GROUP BY key_type", *_args(company_id, as_of, cutoff))
    total = sum(r[1] for r in rows)
    due = sum(r[3] for r in rows if policy.deletes(r[0]))
    within = sum(r[2] - r[3] for r in rows if policy.deletes(r[0]))
    kept_expired = {r[0]: r[2] for r in rows if not policy.deletes(r[0])
                    or r[0] in policy.risky()}
    kept_past = {r[0]: r[3] for r in rows if r[0] in kept_expired}
    figures = {"total_keys": total, "due_for_cleanup": due, "expired_within_retention": within,
               "expired_keys": sum(r[2] for r in rows), "expired_ratio": due / total if total
               else 0.0, "retention_days": retention_days,
               "expiry_source": "expires_at" if exp == "expires_at" else "updated_at + TTL",
               "cleanup_deletes": policy.deletable()}
    ratio_status, ratio_msg = classify_expired_ratio(
        due, total, t, retention_days=retention_days, within_retention=within)
    count_status, count_msg = classify_expired_count(due, t)
    kept_status, kept_msg = classify_kept_types(kept_past, kept_expired, policy,
                                                retention_days=retention_days)
    return [CheckResult("expired_ratio", ratio_status, ratio_msg, figures),
            CheckResult("expired_count", count_status, count_msg, figures),
            CheckResult("kept_types", kept_status, kept_msg,
                        {"past_expiry": kept_expired, "past_retention": kept_past})]


async def _pool(conn: asyncpg.Connection, t: Thresholds) -> CheckResult:
    """Server connections, not this command's own pool (one connection: it can never warn)."""
    rows = await conn.fetch(
        "SELECT application_name, count(*) FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' GROUP BY application_name")
    in_use = sum(r[1] for r in rows)
    max_connections, reserved = await conn.fetchrow(
        "SELECT current_setting('max_connections')::int, "
        "current_setting('superuser_reserved_connections')::int")
    allowed = max(max_connections - reserved, 1)
    by_app = {r[0] if r[0] is not None else "(not visible to this role)": r[1] for r in rows}
    status, msg = classify_pool(in_use, allowed, by_app, t)
    return CheckResult("pool_utilization", status, msg, {
        "server_connections": in_use, "server_max_connections": max_connections,
        "superuser_reserved_connections": reserved, "by_application": by_app})


async def _pick_read(conn: asyncpg.Connection, company_id: str | None
                     ) -> tuple[str, tuple[str, ...]]:
    """What to time: one existing key, else a creds row, else nothing (`SELECT 1`)."""
    key = await conn.fetchrow("SELECT company_id, key_type, key_id FROM whatsapp_keys"
                              + _scope(company_id, 1) + " LIMIT 1", *_args(company_id))
    if key is not None:
        return "key", tuple(key)
    creds_company = company_id or await conn.fetchval(
        "SELECT company_id FROM whatsapp_auth LIMIT 1")
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM whatsapp_auth WHERE company_id = $1)",
                           creds_company):
        return "creds", (creds_company,)
    return "ping", ()


async def _latency(store: PostgresAuthStore, kind: str, ref: tuple[str, ...], samples: int,
                   t: Thresholds, clock: Callable[[], float] = time.perf_counter) -> CheckResult:
    async def ping() -> Any:
        async with store.connection() as c:
            return await c.fetchval("SELECT 1")

    if kind == "key":
        what = f"keys.get of one {ref[1]} key"

        def read() -> Any:
            return store.get_keys(ref[0], ref[1], [ref[2]])
    elif kind == "creds":
        what = "creds read"

        def read() -> Any:
            return store.read_creds(ref[0])
    else:
        what, read = "SELECT 1 (no creds or keys to read)", ping
    timings: list[float] = []
    for _ in range(samples):
        started = clock()
        await read()
        timings.append((clock() - started) * 1000)
    status, msg, figures = classify_latency(timings, t)
    return CheckResult("query_latency", status, f"{what}: {msg}", {"read": what, **figures})


def check_arguments(samples: int, retention_days: float) -> None:
    """Refuse unusable arguments before any I/O (the CLI calls it before connecting)."""
    if not 1 <= samples <= MAX_SAMPLES:
        raise ConfigError(f"samples must be from 1 to {MAX_SAMPLES}, got {samples}")
    problem = retention_error(retention_days)
    if problem:
        raise ConfigError(problem, hint="use the retention your cleanup job runs with "
                          f"(default {DEFAULT_RETENTION_DAYS})")


async def check_health(store: PostgresAuthStore, company_id: str | None = None, *,
                       samples: int = DEFAULT_SAMPLES,
                       thresholds: Thresholds = Thresholds(),
                       retention_days: float = DEFAULT_RETENTION_DAYS,
                       policy: CleanupPolicy = DEFAULT_CLEANUP_POLICY) -> HealthReport:
    """Run every check (see module docstring); raises a `StoreError` if PostgreSQL fails.
    `retention_days` and `policy` must be those the cleanup job runs with."""
    if company_id is not None:
        company_id = validate_company_id(company_id)
    check_arguments(samples, retention_days)
    try:
        async with store.connection() as conn:
            await require_tables(conn)
            columns = await key_columns(conn)
            as_of: dt.datetime = await conn.fetchval("SELECT now()")
            checks = [await _auth_row(conn, company_id),
                      await _freshness(conn, company_id, as_of, thresholds, columns),
                      *await _expired(conn, company_id, as_of, thresholds, columns, policy,
                                      retention_days),
                      await _pool(conn, thresholds)]
            kind, ref = await _pick_read(conn, company_id)
        # timed after releasing our connection: a pool of one must not wait on itself
        checks.append(await _latency(store, kind, ref, samples, thresholds))
    except DB_ERRORS as exc:
        raise classify(exc, operation="health check", company_id=company_id, sent=False,
                       note="An unreachable or failing PostgreSQL is itself the finding"
                       ) from exc
    return HealthReport(worst([c.status for c in checks]), company_id, as_of, checks)
