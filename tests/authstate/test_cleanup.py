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
from harness.authstate.cleanup import AGE_BUCKETS, cleanup_expired_keys
from harness.authstate.errors import AuthStateError
from harness.errors import ConfigError

D = dt.timedelta(days=1)
US = dt.timedelta(microseconds=1)
PAIR = {"public": bytes(range(32)), "private": bytes(range(32, 64))}



@pytest.fixture
async def as_of(db) -> dt.datetime:
    return await db.fetchval("SELECT now()")


async def _key(store, db, key_id: str, expires_at: dt.datetime | None, *,
               key_type: str = "pre-key", company: str = "acme", value=PAIR) -> None:
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
    assert before.by_type == {"pre-key": {"total": 13, "expired": 11, "eligible": 2}}
    assert before.auth_rows == 1
    sizes = before.sizes
    assert sizes.keys_total == sizes.keys_table + sizes.keys_indexes > 0 and sizes.auth_total > 0


async def test_dry_run_deletes_nothing_and_reports_what_would_go(
        store, db, as_of, tmp_path: Path) -> None:
    await _seed_ages(store, db, as_of)
    await _key(store, db, "old-session", as_of - 40 * D, key_type="session", value={"v": 1})
    result = await cleanup_expired_keys(store, dry_run=True, as_of=as_of,
                                        archive=tmp_path / "a.jsonl")
    assert result.dry_run and result.deleted == 3
    assert result.deleted_by_type == {"pre-key": 2, "session": 1}
    assert result.after is None and result.batches == 0 and result.archive_path is None
    assert len(await _ids(db)) == 14
    assert not (tmp_path / "a.jsonl").exists()


async def test_deletes_exactly_rows_expired_longer_than_retention(store, db, as_of) -> None:
    await _seed_ages(store, db, as_of)
    result = await cleanup_expired_keys(store, as_of=as_of)
    assert result.deleted == 2 and result.deleted_by_type == {"pre-key": 2}
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
    await store.set_keys("acme", {"pre-key": {str(i): PAIR for i in range(12)}})
    await db.execute("UPDATE whatsapp_keys SET expires_at = $1", as_of - 31 * D)
    result = await cleanup_expired_keys(store, batch_size=5, as_of=as_of)
    assert result.deleted == 12 and result.batches == 3
    assert await _ids(db) == set()


async def test_archive_holds_exactly_the_deleted_rows_mode_0600(
        store, db, as_of, tmp_path: Path) -> None:
    await _key(store, db, "1", as_of - 31 * D)
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


@pytest.mark.parametrize("kwargs", [{"retention_days": -1}, {"max_delete": -5},
                                    {"batch_size": 0}])
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
