"""The cleanup job: what is eligible, dry run, max-delete, batches, archive, metrics and buckets."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import asyncpg
import pytest

from harness.authstate import PostgresAuthStore
from harness.authstate.cleanup import (
    AGE_BUCKETS,
    DEFAULT_POLICY,
    CleanupPolicy,
    cleanup_expired_keys,
)
from harness.authstate.errors import AuthStateError, StoreUnavailable
from harness.authstate.key_types import KEY_TYPES
from harness.errors import ConfigError

D = dt.timedelta(days=1)
US = dt.timedelta(microseconds=1)
PAIR = {"public": bytes(range(32)), "private": bytes(range(32, 64))}



@pytest.fixture
async def as_of(db) -> dt.datetime:
    return await db.fetchval("SELECT now()")


async def _key(store, db, key_id: str, expires_at: dt.datetime | None, *,
               key_type: str = "session", company: str = "acme", value=PAIR) -> None:
    await store.set_keys(company, {key_type: {key_id: value}})
    await db.execute("UPDATE whatsapp_keys SET expires_at = $1 WHERE company_id = $2 AND "
                     "key_type = $3 AND key_id = $4", expires_at, company, key_type, key_id)


async def _ids(db) -> set[str]:
    return {r[0] for r in await db.fetch("SELECT key_id FROM whatsapp_keys")}


# expiry ages around every bucket boundary; buckets are (lower, upper]
AGES = {
    "live": -D, "no-expiry": None,
    "1h": dt.timedelta(hours=1), "1d": D,                     # <1d
    "1d+": D + US, "3d": 3 * D, "7d": 7 * D,                  # 1-7d
    "7d+": 7 * D + US, "14d": 14 * D,                         # 7-14d
    "14d+": 14 * D + US, "30d": 30 * D,                       # 14-30d
    "30d+": 30 * D + US, "45d": 45 * D,                       # >30d
}


async def _seed_ages(store, db, as_of) -> None:
    for key_id, age in AGES.items():
        await _key(store, db, key_id, None if age is None else as_of - age)


async def test_metrics_and_age_buckets_at_every_boundary(store, db, as_of) -> None:
    await _seed_ages(store, db, as_of)
    await store.write_creds("acme", {"noiseKey": 1})
    result = await cleanup_expired_keys(store, dry_run=True, as_of=as_of)
    before = result.before
    assert before.age_buckets == {"<1d": 2, "1-7d": 3, "7-14d": 2, "14-30d": 2, ">30d": 2}
    assert list(before.age_buckets) == [label for label, _, _ in AGE_BUCKETS]
    assert (before.total_keys, before.no_expiry_keys, before.expired_keys) == (13, 1, 11)
    assert before.eligible_keys == 2 == before.age_buckets[">30d"]  # retention 30 d = >30d bucket
    assert before.by_type == {"session": {"total": 13, "expired": 11, "past_retention": 2,
                                          "eligible": 2, "policy": "delete"}}
    assert before.auth_rows == 1
    sizes = before.sizes
    assert sizes.keys_total == sizes.keys_table + sizes.keys_indexes > 0 and sizes.auth_total > 0


async def test_dry_run_deletes_nothing_and_reports_what_would_go(
        store, db, as_of, tmp_path: Path) -> None:
    await _seed_ages(store, db, as_of)
    await _key(store, db, "old-sk", as_of - 40 * D, key_type="sender-key", value={"v": 1})
    result = await cleanup_expired_keys(store, dry_run=True, as_of=as_of,
                                        archive=tmp_path / "a.jsonl")
    assert result.dry_run and result.deleted == 3
    assert result.deleted_by_type == {"sender-key": 1, "session": 2}
    assert result.after is None and result.batches == 0 and result.archive_path is None
    assert len(await _ids(db)) == 14
    assert not (tmp_path / "a.jsonl").exists()


async def test_deletes_exactly_rows_expired_longer_than_retention(store, db, as_of) -> None:
    await _seed_ages(store, db, as_of)
    result = await cleanup_expired_keys(store, as_of=as_of)
    assert result.deleted == 2 and result.deleted_by_type == {"session": 2}
    assert await _ids(db) == set(AGES) - {"30d+", "45d"}
    assert result.after is not None
    assert result.after.total_keys == 11 and result.after.age_buckets[">30d"] == 0
    assert result.after.eligible_keys == 0
    assert result.cutoff == as_of - 30 * D


async def test_retention_is_configurable(store, db, as_of) -> None:
    await _seed_ages(store, db, as_of)
    result = await cleanup_expired_keys(store, retention_days=7, as_of=as_of)
    assert result.deleted == 6  # everything expired more than 7 days ago
    assert await _ids(db) == {"live", "no-expiry", "1h", "1d", "1d+", "3d", "7d"}
    await cleanup_expired_keys(store, retention_days=0, as_of=as_of)
    assert await _ids(db) == {"live", "no-expiry"}  # never-expiring and live rows stay


async def test_max_delete_takes_the_oldest_first_in_batches(store, db, as_of) -> None:
    for i in range(7):
        await _key(store, db, f"k{i}", as_of - (40 + i) * D)
    result = await cleanup_expired_keys(store, max_delete=3, batch_size=2, as_of=as_of)
    assert result.deleted == 3 and result.batches == 2  # 2 + 1
    assert await _ids(db) == {"k0", "k1", "k2", "k3"}  # k6, k5, k4 expired earliest
    dry = await cleanup_expired_keys(store, max_delete=3, dry_run=True, as_of=as_of)
    assert dry.deleted == 3 and dry.before.eligible_keys == 4


async def test_batches_cover_everything_without_max(store, db, as_of) -> None:
    await store.set_keys("acme", {"session": {str(i): PAIR for i in range(12)}})
    await db.execute("UPDATE whatsapp_keys SET expires_at = $1", as_of - 31 * D)
    result = await cleanup_expired_keys(store, batch_size=5, as_of=as_of)
    assert result.deleted == 12 and result.batches == 3
    assert await _ids(db) == set()


async def test_archive_holds_exactly_the_deleted_rows_mode_0600(
        store, db, as_of, tmp_path: Path) -> None:
    await _key(store, db, "1", as_of - 31 * D, key_type="sender-key")
    await _key(store, db, "5511999.0", as_of - 60 * D, key_type="session", company="beta",
               value={"_sessions": {"k": "ü"}, "version": "v1"})
    await _key(store, db, "2", as_of - 2 * D)  # kept: not in the archive
    expected = {(r["company_id"], r["key_type"], r["key_id"]): r for r in await db.fetch(
        "SELECT company_id, key_type, key_id, value::text AS value, updated_at, expires_at "
        "FROM whatsapp_keys WHERE key_id <> '2'")}
    path = tmp_path / "archive.jsonl"
    old_umask = os.umask(0)
    try:
        result = await cleanup_expired_keys(store, archive=path, batch_size=1, as_of=as_of)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert result.archived_rows == 2 == result.deleted and result.archive_path == str(path)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["key_id"] for line in lines] == ["5511999.0", "1"]  # oldest expiry first
    for line in lines:
        row = expected[(line["company_id"], line["key_type"], line["key_id"])]
        assert line == {"company_id": row["company_id"], "key_type": row["key_type"],
                        "key_id": row["key_id"], "updated_at": row["updated_at"].isoformat(),
                        "expires_at": row["expires_at"].isoformat(),
                        "value": json.loads(row["value"])}
    assert lines[1]["value"]["public"] == {"type": "Buffer", "data": "AAECAwQFBgcICQoLDA0ODxAREhM"
                                           "UFRYXGBkaGxwdHh8="}


async def test_existing_archive_is_refused_before_deleting(
        store, db, as_of, tmp_path: Path) -> None:
    await _key(store, db, "1", as_of - 31 * D)
    path = tmp_path / "a.jsonl"
    path.write_text("earlier run\n")
    with pytest.raises(ConfigError, match="already exists"):
        await cleanup_expired_keys(store, archive=path, as_of=as_of)
    assert await _ids(db) == {"1"} and path.read_text() == "earlier run\n"


async def test_rows_locked_by_a_live_writer_are_skipped_not_waited_for(
        store, db, as_of, pg_dsn) -> None:
    await _key(store, db, "busy", as_of - 31 * D)
    await _key(store, db, "idle", as_of - 31 * D)
    writer = await asyncpg.connect(pg_dsn)
    try:
        async with writer.transaction():
            await writer.execute("SELECT 1 FROM whatsapp_keys WHERE key_id = 'busy' FOR UPDATE")
            result = await cleanup_expired_keys(store, as_of=as_of)
    finally:
        await writer.close()
    assert result.deleted == 1 and await _ids(db) == {"busy"}


@pytest.mark.parametrize("kwargs", [
    {"retention_days": -1}, {"retention_days": float("inf")}, {"retention_days": float("nan")},
    {"retention_days": 1e10}, {"max_delete": -5}, {"batch_size": 0}])
async def test_bad_arguments_are_refused(store, kwargs) -> None:
    with pytest.raises(ConfigError):
        await cleanup_expired_keys(store, **kwargs)


async def test_missing_tables_are_an_error_not_created(pg_dsn, db) -> None:
    store = await PostgresAuthStore.open(pg_dsn, migrate_schema=False)
    try:
        with pytest.raises(AuthStateError, match="no whatsapp_auth or whatsapp_keys table"):
            await cleanup_expired_keys(store)
    finally:
        await store.close()
    assert await db.fetchval("SELECT to_regclass('whatsapp_keys')") is None


async def test_result_has_a_json_form(store, db, as_of) -> None:
    await _seed_ages(store, db, as_of)
    out = json.loads(json.dumps((await cleanup_expired_keys(store, as_of=as_of)).to_json()))
    assert out["deleted"] == 2 and out["before"]["age_buckets"][">30d"] == 2
    assert out["after"]["sizes"]["keys_total"] > 0 and out["as_of"] == as_of.isoformat()


# -- per-type policy ---------------------------------------------------------------------------
SESSION_BREAKERS = ("pre-key", "app-state-sync-key", "identity-key", "lid-mapping")


async def _one_of_each_type(store, db, expires_at) -> None:
    for key_type in KEY_TYPES:
        await _key(store, db, "1", expires_at, key_type=key_type, value={"v": 1})


async def test_default_policy_never_deletes_what_sessions_need(store, db, as_of) -> None:
    await _one_of_each_type(store, db, as_of - 400 * D)
    dry = await cleanup_expired_keys(store, dry_run=True, as_of=as_of)
    assert set(dry.deleted_by_type) == {"session", "sender-key", "sender-key-memory",
                                        "device-list", "tctoken"}
    assert dry.before.kept_by_policy == 5 and dry.before.eligible_keys == 5
    result = await cleanup_expired_keys(store, as_of=as_of)
    left = {r[0] for r in await db.fetch("SELECT key_type FROM whatsapp_keys")}
    assert set(SESSION_BREAKERS) <= left and "app-state-sync-version" in left
    assert result.deleted == 5 and not left & set(result.deleted_by_type)


async def test_an_explicit_override_deletes_a_kept_type_and_is_flagged(store, db, as_of) -> None:
    await _one_of_each_type(store, db, as_of - 400 * D)
    policy = CleanupPolicy.parse(["pre-key=delete", "device-list=keep"])
    assert policy.risky() == ["pre-key"]
    result = await cleanup_expired_keys(store, as_of=as_of, policy=policy)
    assert "pre-key" in result.deleted_by_type and "device-list" not in result.deleted_by_type
    assert CleanupPolicy.parse(["all=delete"]).risky() == [
        t for t in KEY_TYPES if not DEFAULT_POLICY[t][0]]


@pytest.mark.parametrize("spec", ["pre-key", "pre-key=drop", "prekey=delete", "=keep"])
def test_bad_policy_specs_are_refused(spec) -> None:
    with pytest.raises(ConfigError):
        CleanupPolicy.parse([spec])


def test_every_key_type_has_a_reason_and_the_breakers_are_kept() -> None:
    assert set(DEFAULT_POLICY) == set(KEY_TYPES)
    assert all(reason for _, reason in DEFAULT_POLICY.values())
    assert not any(CleanupPolicy().deletes(t) for t in SESSION_BREAKERS)
    assert not CleanupPolicy().deletes("a-type-baileys-adds-later")


# -- origin-style schema (no expires_at) --------------------------------------------------------
ORIGIN_TABLES = """
CREATE TABLE whatsapp_auth (company_id text PRIMARY KEY, creds jsonb NOT NULL);
CREATE TABLE whatsapp_keys (company_id text NOT NULL, key_type text NOT NULL,
    key_id text NOT NULL, value jsonb, {extra} PRIMARY KEY (company_id, key_type, key_id));
"""


async def _origin_store(pg_dsn, db, extra: str) -> PostgresAuthStore:
    await db.execute(ORIGIN_TABLES.format(extra=extra))
    return await PostgresAuthStore.open(pg_dsn, migrate_schema=False)


async def test_without_expires_at_expiry_is_updated_at_plus_ttl(pg_dsn, db) -> None:
    store = await _origin_store(pg_dsn, db, "updated_at timestamptz NOT NULL DEFAULT now(),")
    try:
        await db.execute(
            "INSERT INTO whatsapp_keys (company_id, key_type, key_id, value, updated_at) VALUES "
            "('a', 'session', 'old', '1', now() - interval '38 days'), "   # 7 d TTL + 31
            "('a', 'session', 'new', '1', now() - interval '36 days'), "   # 7 d TTL + 29
            "('a', 'device-list', 'x', '1', now() - interval '43 days')")  # 14 d TTL + 29
        result = await cleanup_expired_keys(store)
        assert result.expiry_source == "updated_at + TTL"
        assert result.deleted_by_type == {"session": 1}
        left = {r[0] for r in await db.fetch("SELECT key_id FROM whatsapp_keys")}
        assert left == {"new", "x"}
    finally:
        await store.close()
    columns = {r[0] for r in await db.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name='whatsapp_keys'")}
    assert "expires_at" not in columns  # never altered


async def test_without_any_timestamp_the_missing_column_is_named(pg_dsn, db) -> None:
    store = await _origin_store(pg_dsn, db, "")
    try:
        with pytest.raises(ConfigError, match="neither expires_at nor updated_at") as err:
            await cleanup_expired_keys(store, dry_run=True)
        assert "ALTER TABLE whatsapp_keys ADD COLUMN expires_at" in (err.value.hint or "")
    finally:
        await store.close()


# -- a cleanup cut off by a lost connection ------------------------------------------------------
async def test_a_cleanup_cut_off_says_how_many_rows_it_had_deleted(store, db, as_of) -> None:
    await store.set_keys("acme", {"session": {str(i): {"v": i} for i in range(10)}})
    await db.execute("UPDATE whatsapp_keys SET expires_at = $1", as_of - 40 * D)
    # the third DELETE statement ends its own session, as a server going away mid-run would
    await db.execute("""
        CREATE SEQUENCE cleanup_batches;
        CREATE FUNCTION die_on_third() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF nextval('cleanup_batches') >= 3 THEN
                PERFORM pg_terminate_backend(pg_backend_pid());
                PERFORM pg_sleep(5);
            END IF;
            RETURN NULL;
        END $$;
        CREATE TRIGGER die AFTER DELETE ON whatsapp_keys
            FOR EACH STATEMENT EXECUTE FUNCTION die_on_third();""")
    with pytest.raises(StoreUnavailable) as err:
        await cleanup_expired_keys(store, batch_size=2, as_of=as_of)
    assert "4 row(s) had already been deleted in 2 committed batch(es) (session 4)" in str(
        err.value.hint)
    assert await db.fetchval("SELECT count(*) FROM whatsapp_keys") == 6


# -- a group's sender key never goes before the memory of who holds it --------------------------
GROUP = "120363000000000001@g.us"
OWN_KEY = f"{GROUP}::5511999999999::0"


async def _group(store, db, group: str, key_expires: dt.datetime,
                 memory_expires: dt.datetime | bool | None) -> None:
    """Our sender key of `group` and (unless memory_expires is False) its sender-key-memory."""
    await _key(store, db, f"{group}::5511999999999::0", key_expires, key_type="sender-key")
    if memory_expires is not False:
        await _key(store, db, group, memory_expires, key_type="sender-key-memory",
                   value={"5511888888888:0@s.whatsapp.net": True})


async def _types_left(db) -> dict[str, set[str]]:
    rows = await db.fetch("SELECT key_type, key_id FROM whatsapp_keys")
    left: dict[str, set[str]] = {}
    for key_type, key_id in rows:
        left.setdefault(key_type, set()).add(key_id)
    return left


async def test_a_sender_key_is_kept_while_its_groups_memory_is_not_due(store, db, as_of) -> None:
    """Both written when the group was last used: the key's TTL is 7 days, the memory's 14. At
    40 days the key is past the retention but the memory is not: deleting the key alone would
    make Baileys send with a new key that the memory says everyone already has."""
    last_used = as_of - 40 * D
    await _group(store, db, GROUP, last_used + 7 * D, last_used + 14 * D)
    await _group(store, db, "lonely@g.us", last_used + 7 * D, False)  # no memory: nothing to keep
    await _group(store, db, "forever@g.us", last_used + 7 * D, None)  # memory never expires

    result = await cleanup_expired_keys(store, as_of=as_of)
    assert result.deleted_by_type == {"sender-key": 1}
    left = await _types_left(db)
    assert left["sender-key"] == {OWN_KEY, "forever@g.us::5511999999999::0"}
    assert left["sender-key-memory"] == {GROUP, "forever@g.us"}


async def test_a_sender_key_goes_with_its_groups_memory_once_both_are_due(store, db, as_of) -> None:
    last_used = as_of - 50 * D
    await _group(store, db, GROUP, last_used + 7 * D, last_used + 14 * D)
    dry = await cleanup_expired_keys(store, dry_run=True, as_of=as_of)
    assert dry.deleted_by_type == {"sender-key": 1, "sender-key-memory": 1}
    result = await cleanup_expired_keys(store, as_of=as_of)
    assert result.deleted_by_type == {"sender-key": 1, "sender-key-memory": 1}
    assert await _types_left(db) == {}


async def test_health_does_not_call_a_guarded_sender_key_due(pg_dsn, store, db, as_of) -> None:
    from harness.authstate.health import check_health

    last_used = as_of - 40 * D
    await _group(store, db, GROUP, last_used + 7 * D, last_used + 14 * D)
    report = await check_health(store, samples=1)
    figures = {c.name: c.figures for c in report.checks}
    assert figures["expired_ratio"]["due_for_cleanup"] == 0
    result = await cleanup_expired_keys(store, as_of=as_of)
    assert result.deleted == 0  # what health calls due is what cleanup deletes


async def test_on_an_origin_table_a_sender_key_waits_for_its_memory(pg_dsn, db) -> None:
    store = await _origin_store(pg_dsn, db, "updated_at timestamptz NOT NULL DEFAULT now(),")
    try:
        await db.execute(  # last used 40 days ago: key due (7 + 30), memory not (14 + 30)
            "INSERT INTO whatsapp_keys (company_id, key_type, key_id, value, updated_at) VALUES "
            f"('a', 'sender-key', '{OWN_KEY}', '1', now() - interval '40 days'), "
            f"('a', 'sender-key-memory', '{GROUP}', '{{}}', now() - interval '40 days'), "
            "('a', 'sender-key', 'other@g.us::1::0', '1', now() - interval '40 days')")
        result = await cleanup_expired_keys(store)
        assert result.deleted_by_type == {"sender-key": 1}
        left = {r[0] for r in await db.fetch("SELECT key_id FROM whatsapp_keys")}
        assert left == {OWN_KEY, GROUP}
    finally:
        await store.close()
