"""The origin system's health checks, with its thresholds, for one company or the whole store.

Statuses: `ok` < `warning` < `unhealthy`; the report's status is its worst check.

- auth_row: with a company, no creds row -> unhealthy (the service would start with fresh
  creds: QR re-pairing). Across companies: a company that has keys but no creds row ->
  unhealthy (its creds were lost); no creds row at all -> warning.
- key_freshness (age of the newest key update): < 24 h ok; 24 h <= age < 48 h warning;
  >= 48 h unhealthy; no keys at all -> warning.
- expired_ratio: expired / total > 50 % -> unhealthy (exactly 50 % is ok).
- expired_count: more than 500 expired keys -> warning.
- pool_utilization: client pool in use / max, or server client backends / max_connections,
  above 80 % -> warning.
- query_latency: p95 > 200 ms or p99 > 500 ms (the origin's targets; p99 > 500 ms = "slow")
  -> warning.

"Expired" means `expires_at < now()` (database clock). Freshness for all companies judges the
newest update anywhere (is the service writing at all?); how many companies are stale 24-48 h
and >= 48 h is reported as figures, since one idle tenant should not fail the whole service.
Pool utilization is sampled while the check runs: the store's own asyncpg pool (in use / max) and
the server's client backends in `pg_stat_activity` / `max_connections`. Latency is measured on
`samples` point reads of one existing key through the store (Baileys' most frequent operation:
`keys.get` of one id), falling back to a creds read, then to `SELECT 1`. No figure carries a key
value or key id.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import asyncpg

from harness.authstate.company import validate_company_id
from harness.authstate.db_errors import DB_ERRORS, classify
from harness.authstate.dbinfo import require_tables
from harness.authstate.store import PostgresAuthStore

Status = Literal["ok", "warning", "unhealthy"]
_RANK: Final[dict[str, int]] = {"ok": 0, "warning": 1, "unhealthy": 2}
DEFAULT_SAMPLES: Final = 50


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
        return "unhealthy", (f"{orphan_companies} company(ies) have keys but no creds row "
                             "(creds lost: those accounts need re-pairing)")
    if auth_rows == 0:
        return "warning", "no company has creds in this database"
    return "ok", f"{auth_rows} company(ies) have creds"


def classify_freshness(age: dt.timedelta | None, t: Thresholds = Thresholds()
                       ) -> tuple[Status, str]:
    if age is None:
        return "warning", "no keys at all: nothing has been written"
    if age >= t.freshness_unhealthy:
        return "unhealthy", (f"no key updated for {_hours(age)} "
                             f"(>= {_hours(t.freshness_unhealthy)})")
    if age >= t.freshness_warning:
        return "warning", f"no key updated for {_hours(age)} (>= {_hours(t.freshness_warning)})"
    return "ok", f"newest key update {_hours(age)} ago"


def classify_expired_ratio(expired: int, total: int, t: Thresholds = Thresholds()
                           ) -> tuple[Status, str]:
    ratio = expired / total if total else 0.0
    text = f"{expired} of {total} keys expired ({ratio:.1%})"
    if ratio > t.expired_ratio_unhealthy:
        return "unhealthy", f"{text}, more than {t.expired_ratio_unhealthy:.0%}"
    return "ok", text


def classify_expired_count(expired: int, t: Thresholds = Thresholds()) -> tuple[Status, str]:
    if expired > t.expired_count_warning:
        return "warning", (f"{expired} expired keys (> {t.expired_count_warning}): run "
                           "`authstate-harness cleanup`")
    return "ok", f"{expired} expired keys"


def classify_pool(client_in_use: int, client_max: int, server_in_use: int, server_max: int,
                  t: Thresholds = Thresholds()) -> tuple[Status, str]:
    client = client_in_use / client_max if client_max else 0.0
    server = server_in_use / server_max if server_max else 0.0
    text = (f"client pool {client_in_use}/{client_max} ({client:.0%}), server "
            f"{server_in_use}/{server_max} connections ({server:.0%})")
    if client > t.pool_utilization_warning or server > t.pool_utilization_warning:
        return "warning", f"{text}: above {t.pool_utilization_warning:.0%}"
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


async def _auth_row(conn: asyncpg.Connection, company_id: str | None) -> CheckResult:
    if company_id is not None:
        updated = await conn.fetchval(
            "SELECT updated_at FROM whatsapp_auth WHERE company_id = $1", company_id)
        status, msg = classify_auth_row(company_id=company_id, exists=updated is not None)
        return CheckResult("auth_row", status, msg, {"exists": updated is not None,
                                                     "creds_updated_at": updated})
    auth_rows = await conn.fetchval("SELECT count(*) FROM whatsapp_auth")
    orphans = await conn.fetchval(
        "SELECT count(DISTINCT company_id) FROM whatsapp_keys k WHERE NOT EXISTS "
        "(SELECT 1 FROM whatsapp_auth a WHERE a.company_id = k.company_id)")
    status, msg = classify_auth_row(company_id=None, auth_rows=auth_rows,
                                    orphan_companies=orphans)
    return CheckResult("auth_row", status, msg,
                       {"auth_rows": auth_rows, "companies_with_keys_but_no_creds": orphans})


async def _freshness(conn: asyncpg.Connection, company_id: str | None, as_of: dt.datetime,
                     t: Thresholds) -> CheckResult:
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
                   t: Thresholds) -> list[CheckResult]:
    total, expired = await conn.fetchrow(
        "SELECT count(*), count(*) FILTER (WHERE expires_at < $1) FROM whatsapp_keys"
        + _scope(company_id, 2), *_args(company_id, as_of))
    figures = {"total_keys": total, "expired_keys": expired,
               "expired_ratio": expired / total if total else 0.0}
    ratio_status, ratio_msg = classify_expired_ratio(expired, total, t)
    count_status, count_msg = classify_expired_count(expired, t)
    return [CheckResult("expired_ratio", ratio_status, ratio_msg, figures),
            CheckResult("expired_count", count_status, count_msg, figures)]


async def _pool(store: PostgresAuthStore, conn: asyncpg.Connection,
                t: Thresholds) -> CheckResult:
    pool = store.pool
    client_max = pool.get_max_size()
    client_in_use = pool.get_size() - pool.get_idle_size()  # includes this check's connection
    server_in_use, server_max = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), "
        "current_setting('max_connections')::int")
    status, msg = classify_pool(client_in_use, client_max, server_in_use, server_max, t)
    return CheckResult("pool_utilization", status, msg, {
        "client_in_use": client_in_use, "client_max": client_max,
        "server_connections": server_in_use, "server_max_connections": server_max})


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


async def check_health(store: PostgresAuthStore, company_id: str | None = None, *,
                       samples: int = DEFAULT_SAMPLES,
                       thresholds: Thresholds = Thresholds()) -> HealthReport:
    """Run every check (see module docstring); raises a `StoreError` if PostgreSQL fails."""
    if company_id is not None:
        company_id = validate_company_id(company_id)
    if samples < 1:
        raise ValueError("samples must be at least 1")
    try:
        async with store.connection() as conn:
            await require_tables(conn)
            as_of: dt.datetime = await conn.fetchval("SELECT now()")
            checks = [await _auth_row(conn, company_id),
                      await _freshness(conn, company_id, as_of, thresholds),
                      *await _expired(conn, company_id, as_of, thresholds),
                      await _pool(store, conn, thresholds)]
            kind, ref = await _pick_read(conn, company_id)
        # timed after releasing our connection: a pool of one must not wait on itself
        checks.append(await _latency(store, kind, ref, samples, thresholds))
    except DB_ERRORS as exc:
        raise classify(exc, operation="health check", company_id=company_id, sent=False,
                       note="An unreachable or failing PostgreSQL is itself the finding"
                       ) from exc
    return HealthReport(worst([c.status for c in checks]), company_id, as_of, checks)
