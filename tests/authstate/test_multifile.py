"""Baileys multi-file folders <-> PostgreSQL: names, export, import, and what is refused."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from harness.authstate import InvalidCompanyId, PostgresAuthStore, StoreRejected, codec
from harness.authstate.creds import init_auth_creds
from harness.authstate.multifile import (
    MANIFEST_NAME,
    BadFolder,
    ExportRefused,
    export_company,
    fix_file_name,
    import_folder,
    key_file_name,
    parse_file_name,
)
from harness.authstate.multifile import db as multifile_db
from harness.authstate.multifile.names import round_trips

PAIR = {"public": bytes(range(32)), "private": bytes(range(32, 64))}
# Ids shaped like the ones Baileys v7 really writes, one or more per type.
REAL_KEYS = {
    "pre-key": {"1": PAIR, "812": PAIR},
    "session": {"5511999999999.0": {"_sessions": {"Bf8=": {"registrationId": 42}},
                                     "version": "v1"},
                "123456789_1.2": {"_sessions": {}, "version": "v1"}},
    "sender-key": {"120363021234567890@g.us::5511999999999::0": b'{"x":1}',
                   "5511999-1600000000@g.us::123456789_1::3": b"[]"},
    "sender-key-memory": {"120363021234567890@g.us": {"5511999999999:2@s.whatsapp.net": True}},
    "app-state-sync-key": {"AAAAAB/+cw==": {"keyData": "c2VjcmV0",
                                            "fingerprint": {"rawId": 1, "currentIndex": 2,
                                                            "deviceIndexes": [0, 1]},
                                            "timestamp": {"low": 5, "high": 0,
                                                          "unsigned": False}}},
    "app-state-sync-version": {"regular_high": {"version": 3, "hash": bytes(128),
                                                "indexValueMap": {"aGk=": {"valueMac": b"m"}}}},
    "lid-mapping": {"5511999999999": "123456789", "123456789_reverse": "5511999999999"},
    "device-list": {"5511999999999": ["0", "2"]},
    "tctoken": {"5511999999999@s.whatsapp.net": {"token": b"tok", "timestamp": "1700000000"},
                "__index": {"token": b"i"}},
    "identity-key": {"5511999999999.0": bytes([5]) + bytes(32)},
}



async def _seed(store: PostgresAuthStore, company: str = "acme", keys=REAL_KEYS) -> dict:
    creds = init_auth_creds()
    await store.write_creds(company, creds)
    await store.set_keys(company, keys)
    return creds


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# -- names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "fixed"), [
    ("app-state-sync-key-AB/c+d=.json", "app-state-sync-key-AB__c+d=.json"),
    ("sender-key-g@g.us::5511::0.json", "sender-key-g@g.us--5511--0.json"),
    ("session-a/b:c@d.e_f+g=h.json", "session-a__b-c@d.e_f+g=h.json"),  # only / and : change
    ("tctoken-__index.json", "tctoken-__index.json"),
])
def test_fix_file_name_replaces_slash_and_colon_only(name: str, fixed: str) -> None:
    assert fix_file_name(name) == fixed


@pytest.mark.parametrize(("key_type", "key_id"),
                         [(t, i) for t, ids in REAL_KEYS.items() for i in ids])
def test_every_real_baileys_id_reads_back_from_its_file_name(key_type: str, key_id: str) -> None:
    assert round_trips(key_type, key_id)
    assert parse_file_name(key_file_name(key_type, key_id)) == (key_type, key_id)


def test_longest_known_type_wins() -> None:
    assert parse_file_name("sender-key-memory-1@g.us.json") == ("sender-key-memory", "1@g.us")
    assert parse_file_name("app-state-sync-version-regular.json") == (
        "app-state-sync-version", "regular")
    # a sender-key whose id begins with "memory-" is read as sender-key-memory: not round-trip
    assert not round_trips("sender-key", "memory-1@g.us::2::0")


@pytest.mark.parametrize("name", ["creds.json", "foo-1.json", "pre-key-1.txt", "pre-key.json",
                                  MANIFEST_NAME, "notes.md"])
def test_non_key_files_are_not_parsed(name: str) -> None:
    assert parse_file_name(name) is None


@pytest.mark.parametrize(("key_type", "key_id"), [
    ("pre-key", "a:b"),         # ':' came back as '-'
    ("session", "a/b"),         # '/' came back as '__'
    ("tctoken", "x/y"),
    ("app-state-sync-key", "a__b"),  # not base64: '__' read as '/'
    ("sender-key", "g:x::u::0"),  # ':' inside the group part
])
def test_ids_the_rule_cannot_read_back_are_detected(key_type: str, key_id: str) -> None:
    assert not round_trips(key_type, key_id)


# -- export --------------------------------------------------------------------------------------
async def test_export_writes_exactly_what_baileys_writes(store, tmp_path: Path) -> None:
    creds = await _seed(store)
    out = tmp_path / "acme"
    result = await export_company(store, "acme", out)
    expected = {"creds.json"} | {key_file_name(t, i) for t, ids in REAL_KEYS.items() for i in ids}
    assert set(_files(out)) == expected
    assert json.loads((out / "creds.json").read_text()) == json.loads(codec.dumps(creds))
    for key_type, ids in REAL_KEYS.items():
        for key_id, value in ids.items():
            text = (out / key_file_name(key_type, key_id)).read_text()
            assert codec.loads(text) == value
            assert text == codec.dumps(codec.loads(text))  # compact, base64 Buffers
    assert result.counts == {t: len(ids) for t, ids in sorted(REAL_KEYS.items())}
    assert result.manifest_entries == 0 and not (out / MANIFEST_NAME).exists()
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700


async def test_export_buffers_use_baileys_v7_base64_form(store, tmp_path: Path) -> None:
    await _seed(store, keys={"identity-key": {"1.0": b"\x05\xff"}})
    await export_company(store, "acme", tmp_path / "o")
    assert (tmp_path / "o" / "identity-key-1.0.json").read_text() == \
        '{"type":"Buffer","data":"Bf8="}'


async def test_export_refuses_non_empty_directory(store, tmp_path: Path) -> None:
    await _seed(store)
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ExportRefused, match="not empty"):
        await export_company(store, "acme", tmp_path)
    assert _files(tmp_path) == {"keep.txt": b"mine"}


async def test_overwrite_replaces_auth_files_removes_stale_and_keeps_others(
        store, tmp_path: Path) -> None:
    await _seed(store)
    out = tmp_path / "o"
    await export_company(store, "acme", out)
    (out / "notes.txt").write_text("mine")
    (out / "pre-key-999.json").write_text("{}")  # a key deleted since the last export
    (out / "creds.json").write_text("stale")
    await store.set_keys("acme", {"pre-key": {"1": None}})
    result = await export_company(store, "acme", out, overwrite=True)
    files = _files(out)
    assert "pre-key-999.json" not in files and "pre-key-1.json" not in files
    assert files["notes.txt"] == b"mine"
    assert files["creds.json"] != b"stale"
    assert result.removed_stale == 2 and result.foreign_files == ["notes.txt"]
    assert not [n for n in files if n.startswith(".authstate-export-")]


async def test_export_of_company_without_creds_writes_nothing(store, tmp_path: Path) -> None:
    await store.set_keys("acme", {"pre-key": {"1": PAIR}})
    with pytest.raises(ExportRefused, match="no creds"):
        await export_company(store, "acme", tmp_path / "o")
    assert not (tmp_path / "o").exists()


async def test_export_invalid_company_id_writes_nothing(store, tmp_path: Path) -> None:
    with pytest.raises(InvalidCompanyId):
        await export_company(store, "acme'; DROP TABLE whatsapp_keys;--", tmp_path / "o")
    assert not (tmp_path / "o").exists()


async def test_export_refuses_keys_whose_file_names_collide(store, tmp_path: Path) -> None:
    await _seed(store, keys={"pre-key": {"a:b": PAIR, "a-b": PAIR, "1": PAIR}})
    with pytest.raises(ExportRefused, match=r"1 pre-key key.*share a file name"):
        await export_company(store, "acme", tmp_path / "o")
    assert not (tmp_path / "o").exists()


async def test_export_refuses_ids_too_long_for_a_file_name(store, tmp_path: Path) -> None:
    await _seed(store, keys={"session": {"é" * 200: {"v": 1}}})
    with pytest.raises(ExportRefused, match="too long"):
        await export_company(store, "acme", tmp_path / "o")


async def test_ambiguous_ids_go_to_the_manifest_and_come_back_exactly(
        store, tmp_path: Path) -> None:
    odd = {"pre-key": {"a:b": PAIR}, "session": {"x/y": {"v": 1}},
           "sender-key": {"memory-1@g.us::2::0": b"k"}, "custom-type": {"1": "v"}}
    await _seed(store, keys=odd)
    out = tmp_path / "o"
    result = await export_company(store, "acme", out)
    assert result.manifest_entries == 4
    assert (out / "pre-key-a-b.json").exists()  # still where Baileys looks for it
    imported = await import_folder(store, "beta", out)
    assert imported.via_manifest == 4
    for key_type, ids in odd.items():
        assert await store.get_keys("beta", key_type, list(ids)) == ids
    again = tmp_path / "again"
    await export_company(store, "beta", again)
    assert _files(again) == _files(out)


async def test_export_streams_more_keys_than_one_fetch_batch(store, tmp_path: Path) -> None:
    n = multifile_db.FETCH_BATCH * 2 + 7
    await _seed(store, keys={"pre-key": {str(i): PAIR for i in range(n)}})
    result = await export_company(store, "acme", tmp_path / "o")
    assert result.counts == {"pre-key": n}
    assert len(list((tmp_path / "o").iterdir())) == n + 1


# -- import --------------------------------------------------------------------------------------
async def test_import_round_trips_every_type_and_counts(store, db, tmp_path: Path) -> None:
    creds = await _seed(store)
    await export_company(store, "acme", tmp_path / "o")
    result = await import_folder(store, "beta", tmp_path / "o")
    assert result.counts == {t: len(ids) for t, ids in sorted(REAL_KEYS.items())}
    assert await store.read_creds("beta") == creds
    for key_type, ids in REAL_KEYS.items():
        assert await store.get_keys("beta", key_type, list(ids)) == ids
    short, long_ = await db.fetchrow(
        "SELECT min(expires_at - updated_at), max(expires_at - updated_at) FROM whatsapp_keys "
        "WHERE company_id = 'beta'")
    assert (short.days, long_.days) == (7, 14)  # the store's per-type TTLs


async def test_import_dry_run_writes_nothing(store, db, tmp_path: Path) -> None:
    await _seed(store)
    await export_company(store, "acme", tmp_path / "o")
    result = await import_folder(store, "beta", tmp_path / "o", dry_run=True)
    assert result.dry_run and result.keys == sum(len(v) for v in REAL_KEYS.values())
    assert await db.fetchval("SELECT count(*) FROM whatsapp_keys WHERE company_id='beta'") == 0
    assert await store.read_creds("beta") is None


async def test_import_revives_every_buffer_form(store, tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "creds.json").write_text(codec.dumps(init_auth_creds()))
    (folder / "identity-key-1.0.json").write_text('{"type":"Buffer","data":[5,255]}')  # v6
    (folder / "identity-key-2.0.json").write_text('{"0":5,"1":255}')  # JSON'd Uint8Array
    (folder / "identity-key-3.0.json").write_text('{"type":"Buffer","data":"Bf8="}')  # v7
    await import_folder(store, "acme", folder)
    got = await store.get_keys("acme", "identity-key", ["1.0", "2.0", "3.0"])
    assert got == {"1.0": b"\x05\xff", "2.0": b"\x05\xff", "3.0": b"\x05\xff"}


async def test_bad_files_are_all_listed_and_nothing_is_written(store, db, tmp_path: Path) -> None:
    await _seed(store)
    folder = tmp_path / "o"
    await export_company(store, "acme", folder)
    good = (folder / "pre-key-1.json").read_bytes()
    (folder / "pre-key-1.json").write_bytes(good[: len(good) // 2])  # torn write
    (folder / "pre-key-812.json").write_bytes(b"")  # interrupted before any byte
    (folder / "device-list-5511999999999.json").write_bytes(b"\xff\xfe garbage")
    (folder / "lid-mapping-5511999999999.json").write_text("null")
    (folder / "foo-1.json").write_text("{}")
    (folder / "session-a:b.json").write_text("{}")
    (folder / "subdir").mkdir()
    with pytest.raises(BadFolder) as err:
        await import_folder(store, "beta", folder)
    listed = dict(err.value.problems)
    # a folder (like hidden and non-.json files) is not an auth-state file: ignored, not listed
    assert set(listed) == {"pre-key-1.json", "pre-key-812.json", "device-list-5511999999999.json",
                           "lid-mapping-5511999999999.json", "foo-1.json", "session-a:b.json"}
    assert "truncated or torn" in listed["pre-key-1.json"]
    assert "empty file" in listed["pre-key-812.json"]
    assert "not UTF-8" in listed["device-list-5511999999999.json"]
    assert "null" in listed["lid-mapping-5511999999999.json"]
    assert "known key type" in listed["foo-1.json"]
    assert "never writes this name" in listed["session-a:b.json"]
    assert "6 bad file(s)" in str(err.value) and "nothing was imported" in str(err.value)
    assert await db.fetchval("SELECT count(*) FROM whatsapp_keys WHERE company_id='beta'") == 0
    assert await store.read_creds("beta") is None


async def test_folder_without_creds_is_refused(store, tmp_path: Path) -> None:
    (tmp_path / "pre-key-1.json").write_text(codec.dumps(PAIR))
    with pytest.raises(BadFolder) as err:
        await import_folder(store, "acme", tmp_path)
    [(name, reason)] = err.value.problems
    assert name == "creds.json" and reason.startswith("missing")


async def test_creds_that_are_not_baileys_creds_are_refused(store, tmp_path: Path) -> None:
    (tmp_path / "creds.json").write_text('{"me": 1}')
    with pytest.raises(BadFolder, match="creds lack noiseKey"):
        await import_folder(store, "acme", tmp_path)


async def test_import_over_existing_state_needs_replace(store, db, tmp_path: Path) -> None:
    await _seed(store)
    await export_company(store, "acme", tmp_path / "o")
    await store.set_keys("beta", {"pre-key": {"999": PAIR}})
    with pytest.raises(Exception, match="already has auth state") as err:
        await import_folder(store, "beta", tmp_path / "o")
    assert "--replace" in (err.value.hint or "")
    assert await db.fetchval("SELECT count(*) FROM whatsapp_keys WHERE company_id='beta'") == 1
    result = await import_folder(store, "beta", tmp_path / "o", replace=True)
    assert result.replaced_keys == 1
    assert await store.get_keys("beta", "pre-key", ["999"]) == {}
    assert await store.get_keys("beta", "pre-key", ["1"]) == {"1": PAIR}


async def test_import_is_one_transaction(store, db, tmp_path: Path) -> None:
    """A real failure in the last of several statements (creds and 2,000 keys already written
    by then) leaves nothing behind."""
    await _seed(store, keys={"pre-key": {str(i): PAIR for i in range(2500)}})
    await export_company(store, "acme", tmp_path / "o")
    await db.execute("""
        CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.company_id = 'beta' AND NEW.key_id = '999' THEN
            RAISE EXCEPTION 'injected failure'; END IF;
        RETURN NEW; END $$;
        CREATE TRIGGER boom BEFORE INSERT ON whatsapp_keys FOR EACH ROW EXECUTE FUNCTION boom();
    """)  # rows are written sorted, so '999' is the very last of the 2,500
    with pytest.raises(StoreRejected, match="injected failure"):
        await import_folder(store, "beta", tmp_path / "o")
    assert await db.fetchval("SELECT count(*) FROM whatsapp_keys WHERE company_id='beta'") == 0
    assert await db.fetchval("SELECT count(*) FROM whatsapp_auth WHERE company_id='beta'") == 0


async def test_import_invalid_company_id_touches_nothing(store, db, tmp_path: Path) -> None:
    await _seed(store)
    await export_company(store, "acme", tmp_path / "o")
    with pytest.raises(InvalidCompanyId):
        await import_folder(store, "bad id", tmp_path / "o")
    assert await db.fetchval("SELECT count(DISTINCT company_id) FROM whatsapp_keys") == 1


async def test_export_import_export_is_byte_identical(store, tmp_path: Path) -> None:
    await _seed(store)
    await export_company(store, "acme", tmp_path / "a")
    await import_folder(store, "beta", tmp_path / "a")
    await export_company(store, "beta", tmp_path / "b")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_bad_folder_message_is_bounded() -> None:
    err = BadFolder("/x", [(f"pre-key-{i}.json", "empty file") for i in range(120)])
    assert "... and 70 more" in str(err) and len(err.problems) == 120
    assert os.sep in err.directory


async def test_values_postgresql_cannot_hold_are_listed(store, tmp_path: Path) -> None:
    (tmp_path / "creds.json").write_text(codec.dumps(init_auth_creds()))
    (tmp_path / "device-list-1.json").write_text('["a\\u0000b"]')  # NUL: JSONB refuses it
    (tmp_path / "device-list-2.json").write_text('["\\ud800"]')  # a lone surrogate
    (tmp_path / "device-list-3.json").write_text('["fine"]')
    with pytest.raises(BadFolder) as err:
        await import_folder(store, "acme", tmp_path)
    listed = dict(err.value.problems)
    assert set(listed) == {"device-list-1.json", "device-list-2.json"}
    assert "NUL" in listed["device-list-1.json"] and "surrogate" in listed["device-list-2.json"]
    assert await store.read_creds("acme") is None
