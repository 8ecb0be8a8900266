"""Health checks: each threshold at its boundary (pure classification), then real runs."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from harness.authstate import InvalidCompanyId, PostgresAuthStore
from harness.authstate.cleanup import CleanupPolicy, cleanup_expired_keys
from harness.authstate.health import (
    Thresholds,
    check_health,
    classify_auth_row,
    classify_expired_count,
    classify_expired_ratio,
    classify_freshness,
    classify_kept_types,
    classify_latency,
    classify_pool,
    percentile,
    worst,
)
from harness.errors import ConfigError

H = dt.timedelta(hours=1)
US = dt.timedelta(microseconds=1)
PAIR = {"public": bytes(32), "private": bytes(32)}


# -- classification at the boundaries -----------------------------------------------------------
@pytest.mark.parametrize(("age", "status"), [
    (None, "warning"),                  # no keys at all
    (dt.timedelta(0), "ok"),
    (24 * H - US, "ok"),
    (24 * H, "warning"),                # "no key updated in 24 h"
    (48 * H - US, "warning"),
    (48 * H, "unhealthy"),              # 48 h: critical
])
def test_freshness_boundaries(age, status) -> None:
    assert classify_freshness(age)[0] == status


@pytest.mark.parametrize(("expired", "total", "status"), [
    (0, 0, "ok"), (50, 100, "ok"), (51, 100, "unhealthy"), (1, 1, "unhealthy"),
    (500, 1001, "ok"), (501, 1001, "unhealthy"),
])
def test_expired_ratio_boundary_is_strictly_more_than_half(expired, total, status) -> None:
    assert classify_expired_ratio(expired, total)[0] == status


@pytest.mark.parametrize(("expired", "status"), [(0, "ok"), (500, "ok"), (501, "warning")])
def test_expired_count_boundary(expired, status) -> None:
    assert classify_expired_count(expired)[0] == status


@pytest.mark.parametrize(("server", "status"), [
    ((80, 100), "ok"),          # exactly 80 % is not above 80 %
    ((81, 100), "warning"),
    ((0, 0), "ok"),
])
def test_pool_utilization_boundary(server, status) -> None:
    assert classify_pool(*server)[0] == status


def test_pool_message_names_who_holds_the_connections() -> None:
    _, message = classify_pool(90, 100, {"baileys-api": 70, "authstate-harness": 1, None: 19})
    assert message.index("baileys-api 70") < message.index("(unnamed) 19")


def test_kept_types_are_fine_until_a_ttl_only_cleanup_would_take_them() -> None:
    status, message = classify_kept_types({"pre-key": 0}, {"pre-key": 812})
    assert status == "ok" and "nothing to do" in message  # an idle week: normal
    status, message = classify_kept_types({"pre-key": 812}, {"pre-key": 812})
    assert status == "warning" and "812 pre-key" in message and "keeps these types" in message
    override = CleanupPolicy.parse(["pre-key=delete"])
    status, message = classify_kept_types({"pre-key": 3}, {"pre-key": 3}, override)
    assert status == "warning" and "this cleanup policy deletes" in message


@pytest.mark.parametrize(("samples", "status", "words"), [
    ([1.0] * 100, "ok", ""),
    ([200.0] * 100, "ok", ""),                                 # targets are "< or =" limits
    ([1.0] * 94 + [201.0] * 6, "warning", "p95 above"),        # p95 = 201 ms
    ([1.0] * 95 + [201.0] * 5, "ok", ""),                      # p95 = 1 ms, p99 = 201 ms
    ([1.0] * 98 + [501.0] * 2, "warning", "slow"),             # p99 = 501 ms
    ([1.0] * 99 + [501.0], "ok", ""),                          # p99 = 1 ms (one outlier)
])
def test_latency_targets(samples, status, words) -> None:
    got, message, figures = classify_latency(samples)
    assert got == status and words in message
    assert figures["samples"] == len(samples) and figures["max_ms"] == max(samples)


def test_nearest_rank_percentile() -> None:
    data = list(range(1, 101))
    assert (percentile(data, 50), percentile(data, 95), percentile(data, 99)) == (50, 95, 99)
    assert percentile([7.0], 99) == 7.0


def test_auth_row_classification() -> None:
    assert classify_auth_row(company_id="acme", exists=True)[0] == "ok"
    assert classify_auth_row(company_id="acme", exists=False)[0] == "unhealthy"
    assert classify_auth_row(company_id=None, auth_rows=3)[0] == "ok"
    assert classify_auth_row(company_id=None, auth_rows=0)[0] == "warning"
    assert classify_auth_row(company_id=None, auth_rows=3, orphan_companies=1)[0] == "unhealthy"


def test_overall_status_is_the_worst() -> None:
    assert worst(["ok", "warning", "ok"]) == "warning"
    assert worst(["warning", "unhealthy"]) == "unhealthy"
    assert worst([]) == "ok"


def test_thresholds_can_be_tightened() -> None:
    strict = Thresholds(expired_count_warning=10)
    assert classify_expired_count(11, strict)[0] == "warning"


# -- against PostgreSQL ------------------------------------------------------------------------
def _by_name(report) -> dict:
    return {c.name: c for c in report.checks}


async def test_healthy_company(store) -> None:
    await store.write_creds("acme", {"noiseKey": 1})
    await store.set_keys("acme", {"pre-key": {"1": PAIR}, "session": {"1.0": {"v": 1}}})
    report = await check_health(store, "acme", samples=5)
    checks = _by_name(report)
    assert list(checks) == ["auth_row", "key_freshness", "expired_ratio", "expired_count",
                            "kept_types", "pool_utilization", "query_latency"]
    for name in ("auth_row", "key_freshness", "expired_ratio", "expired_count", "kept_types"):
        assert checks[name].status == "ok", checks[name]
    latency = checks["query_latency"].figures
    assert latency["samples"] == 5 and latency["read"].startswith("keys.get of one")
    assert latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]
    pool = checks["pool_utilization"].figures
    assert pool["server_connections"] >= 1 and pool["server_max_connections"] > 0
    assert pool["by_application"]["authstate-harness"] >= 1  # the check's own connection
    assert report.status == worst([c.status for c in report.checks])


async def test_missing_creds_row_is_unhealthy(store) -> None:
    await store.set_keys("acme", {"pre-key": {"1": PAIR}})
    report = await check_health(store, "acme", samples=1)
    assert report.status == "unhealthy"
    assert _by_name(report)["auth_row"].status == "unhealthy"
    everyone = _by_name(await check_health(store, samples=1))["auth_row"]
    assert everyone.status == "unhealthy"
    assert everyone.figures["companies_with_keys_but_no_creds"] == 1


async def test_stale_keys_and_expired_majority(store, db) -> None:
    await store.write_creds("acme", {"noiseKey": 1})
    await store.set_keys("acme", {"session": {str(i): PAIR for i in range(600)}})
    await db.execute("UPDATE whatsapp_keys SET updated_at = now() - interval '49 hours', "
                     "expires_at = now() - interval '31 days' WHERE key_id::int < 501")
    await db.execute("UPDATE whatsapp_keys SET updated_at = now() - interval '30 hours' "
                     "WHERE key_id::int >= 501")
    checks = _by_name(await check_health(store, "acme", samples=1))
    assert checks["key_freshness"].status == "warning"  # newest update 30 h ago
    assert 30 <= checks["key_freshness"].figures["age_hours"] < 31
    assert checks["expired_ratio"].status == "unhealthy"  # 501 / 600
    assert checks["expired_count"].status == "warning"  # 501 > 500
    assert checks["expired_count"].figures["due_for_cleanup"] == 501


async def test_all_companies_freshness_counts_stale_tenants(store, db) -> None:
    for company, hours in (("fresh", 1), ("idle", 30), ("gone", 50)):
        await store.write_creds(company, {"noiseKey": 1})
        await store.set_keys(company, {"pre-key": {"1": PAIR}})
        await db.execute("UPDATE whatsapp_keys SET updated_at = now() - $1::interval "
                         "WHERE company_id = $2", dt.timedelta(hours=hours), company)
    check = _by_name(await check_health(store, samples=1))["key_freshness"]
    assert check.status == "ok"  # the service as a whole is writing
    assert check.figures["companies_stale_warning"] == 1
    assert check.figures["companies_stale_unhealthy"] == 1
    gone = _by_name(await check_health(store, "gone", samples=1))["key_freshness"]
    assert gone.status == "unhealthy"


async def test_empty_database_reads_select_1(store) -> None:
    report = await check_health(store, samples=2)
    checks = _by_name(report)
    assert checks["auth_row"].status == "warning" and checks["key_freshness"].status == "warning"
    assert checks["query_latency"].figures["read"].startswith("SELECT 1")


async def test_json_form_carries_no_key_ids(store) -> None:
    await store.write_creds("acme", {"noiseKey": 1})
    await store.set_keys("acme", {"session": {"5511999999999.0": {"v": 1}}})
    text = json.dumps((await check_health(store, "acme", samples=2)).to_json())
    assert "5511999999999" not in text
    assert json.loads(text)["checks"][0]["name"] == "auth_row"


async def test_invalid_company_id_is_refused(store) -> None:
    with pytest.raises(InvalidCompanyId):
        await check_health(store, "acme' OR '1'='1")


# -- health and cleanup agree --------------------------------------------------------------------
async def test_what_health_calls_due_is_what_cleanup_deletes(store, db) -> None:
    await store.write_creds("acme", {"noiseKey": 1})
    await store.set_keys("acme", {"session": {str(i): PAIR for i in range(10)},
                                  "pre-key": {str(i): PAIR for i in range(30)}})
    # every key expired 20 days ago: within the retention, so not due; pre-keys are kept anyway
    await db.execute("UPDATE whatsapp_keys SET expires_at = now() - interval '20 days'")
    checks = _by_name(await check_health(store, "acme", samples=1))
    assert checks["expired_ratio"].status == "ok" and checks["kept_types"].status == "ok"
    assert checks["expired_ratio"].figures["expired_within_retention"] == 10
    # 8 sessions past the retention: 8 of 40 due, which is exactly what cleanup deletes
    await db.execute("UPDATE whatsapp_keys SET expires_at = now() - interval '40 days' "
                     "WHERE key_type = 'session' AND key_id::int < 8")
    due = _by_name(await check_health(store, "acme", samples=1))["expired_count"]
    assert due.figures["due_for_cleanup"] == 8
    assert (await cleanup_expired_keys(store)).deleted == 8
    after = _by_name(await check_health(store, "acme", samples=1))["expired_count"]
    assert after.figures["due_for_cleanup"] == 0


async def test_an_idle_account_is_not_unhealthy_for_its_pre_keys(store, db) -> None:
    await store.write_creds("acme", {"noiseKey": 1})
    await store.set_keys("acme", {"pre-key": {str(i): PAIR for i in range(812)},
                                  "session": {"1.0": PAIR}})
    await db.execute("UPDATE whatsapp_keys SET expires_at = now() - interval '8 days'")
    checks = _by_name(await check_health(store, "acme", samples=1))
    assert checks["expired_ratio"].status == "ok" and checks["kept_types"].status == "ok"
    await db.execute("UPDATE whatsapp_keys SET expires_at = now() - interval '31 days' "
                     "WHERE key_type = 'pre-key'")
    kept = _by_name(await check_health(store, "acme", samples=1))["kept_types"]
    assert kept.status == "warning" and "812 pre-key" in kept.message


async def test_an_origin_schema_without_timestamps_is_checked_read_only(pg_dsn, db) -> None:
    await db.execute("CREATE TABLE whatsapp_auth (company_id text PRIMARY KEY, creds jsonb);"
                     "CREATE TABLE whatsapp_keys (company_id text, key_type text, key_id text, "
                     "value jsonb, PRIMARY KEY (company_id, key_type, key_id));"
                     "INSERT INTO whatsapp_auth VALUES ('acme', '{}');"
                     "INSERT INTO whatsapp_keys VALUES ('acme', 'session', '1.0', '{}')")
    store = await PostgresAuthStore.open(pg_dsn, migrate_schema=False)
    try:
        checks = _by_name(await check_health(store, "acme", samples=1))
    finally:
        await store.close()
    assert checks["auth_row"].status == "ok"
    assert "ADD COLUMN updated_at" in checks["key_freshness"].message
    assert "ADD COLUMN expires_at" in checks["expired_ratio"].message
    assert checks["query_latency"].figures["samples"] == 1
    columns = {r[0] for r in await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name='whatsapp_keys'")}
    assert columns == {"company_id", "key_type", "key_id", "value"}  # nothing was added


@pytest.mark.parametrize("kwargs", [{"samples": 0}, {"retention_days": float("inf")},
                                    {"retention_days": -1}, {"retention_days": float("nan")}])
async def test_bad_arguments_are_refused(store, kwargs) -> None:
    with pytest.raises(ConfigError):
        await check_health(store, **kwargs)
