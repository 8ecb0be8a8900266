"""The memory cache (byte bound, negative entries, read guard), the pending overlay, and the
creds file cache (versions, checksums, permissions, files that must be ignored)."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import orjson
import pytest

from harness.authstate.resilient.cache import MISS, ByteLRU, ReadGuard, creds_key
from harness.authstate.resilient.creds_file import FORMAT, CredsFileCache
from harness.authstate.resilient.overlay import PendingOverlay
from harness.authstate.resilient.records import JournalRecord


def test_lru_stays_under_its_byte_bound_and_evicts_oldest_first() -> None:
    cache = ByteLRU(max_bytes=10_000)
    for i in range(100):
        cache.put(("acme", "session", str(i)), "x" * 500)
        assert cache.bytes <= 10_000
    assert 0 < len(cache) < 100
    assert cache.evictions == 100 - len(cache)
    assert cache.get(("acme", "session", "0")) is MISS  # oldest went first
    assert cache.get(("acme", "session", "99")) == "x" * 500


def test_lru_hit_protects_an_entry_from_eviction() -> None:
    cache = ByteLRU(max_bytes=3 * 700)
    for i in range(3):
        cache.put(("c", "t", str(i)), "x" * 500)
    cache.get(("c", "t", "0"))  # now most recently used
    cache.put(("c", "t", "3"), "x" * 500)
    assert cache.get(("c", "t", "0")) != MISS
    assert cache.get(("c", "t", "1")) is MISS


def test_lru_replacing_an_entry_keeps_byte_count_exact() -> None:
    cache = ByteLRU()
    cache.put(("c", "t", "1"), "a" * 1000)
    cache.put(("c", "t", "1"), "b" * 10)
    cache.put(creds_key("c"), None)
    cache.discard(("c", "t", "1"))
    cache.discard(creds_key("c"))
    assert cache.bytes == 0 and len(cache) == 0


def test_negative_entry_is_a_hit_that_says_absent() -> None:
    cache = ByteLRU()
    cache.put(("acme", "pre-key", "7"), None)
    assert cache.get(("acme", "pre-key", "7")) is None  # known absent
    assert cache.get(("acme", "pre-key", "8")) is MISS  # unknown


def test_entry_larger_than_the_cache_is_not_cached() -> None:
    cache = ByteLRU(max_bytes=1000)
    cache.put(("c", "t", "1"), "y" * 5000)
    assert cache.get(("c", "t", "1")) is MISS and cache.bytes == 0


def test_read_guard_records_values_written_during_a_read() -> None:
    guard = ReadGuard()
    ticket = guard.begin("acme", "session")
    other = guard.begin("beta", "session")
    guard.wrote("acme", "session", [("1", "v1"), ("2", None)])
    guard.wrote("acme", "pre-key", [("3", "v3")])
    guard.wrote("acme", "session", [("1", "v1b")])
    assert ticket == {"1": "v1b", "2": None}  # the newest value written during the read
    assert other == {}
    assert guard.watching("acme", "session") and not guard.watching("acme", "pre-key")
    guard.end("acme", "session", ticket)
    guard.end("beta", "session", other)
    late = guard.begin("acme", "session")
    assert late == {}  # a read that starts after the write sees it in PostgreSQL
    guard.end("acme", "session", late)
    assert not guard._reads


def test_overlay_keeps_the_newest_pending_value_until_its_own_record_is_applied() -> None:
    overlay = PendingOverlay()
    first = JournalRecord(1, "acme", "keys", 1.0, rows=[("session", "a", "v1"),
                                                        ("session", "b", "b1")])
    second = JournalRecord(2, "acme", "keys", 2.0, rows=[("session", "a", None)])
    creds = JournalRecord(3, "acme", "creds", 3.0, creds="c3")
    for r in (first, second, creds):
        overlay.add(r)
    assert overlay.keys_of("acme") == {("session", "a"): (2, None), ("session", "b"): (1, "b1")}
    assert overlay.creds_of("acme") == "c3" and overlay.companies == 1

    assert list(overlay.applied(first)) == [(("session", "b"), "b1")]  # "a" is newer in 2
    assert overlay.keys_of("acme") == {("session", "a"): (2, None)}
    assert overlay.has_keys("acme")
    assert list(overlay.applied(second)) == [(("session", "a"), None)]
    assert not overlay.has_keys("acme") and overlay.keys_of("acme") is None
    assert list(overlay.applied(creds)) == [(None, "c3")]
    assert overlay.companies == 0


# -- creds file cache ----------------------------------------------------------------------------
CREDS_TEXT = '{"registered":true,"me":{"id":"5511999@s.whatsapp.net"}}'


def test_creds_file_round_trip_and_permissions(tmp_path: Path) -> None:
    files = CredsFileCache(tmp_path / "creds")
    assert files.write("acme", CREDS_TEXT)
    assert not files.write("acme", CREDS_TEXT)  # unchanged: not rewritten
    assert CredsFileCache(tmp_path / "creds").read("acme") == CREDS_TEXT
    assert not CredsFileCache(tmp_path / "creds").write("acme", CREDS_TEXT)  # nor after restart
    assert (tmp_path / "creds").stat().st_mode & 0o777 == 0o700
    assert files.path("acme").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in (tmp_path / "creds").iterdir()] == ["acme.json"]  # no temp left


def test_creds_file_is_rewritten_when_content_changes(tmp_path: Path) -> None:
    files = CredsFileCache(tmp_path / "creds")
    files.write("acme", CREDS_TEXT)
    mtime = files.path("acme").stat().st_mtime_ns
    assert files.write("acme", CREDS_TEXT.replace("true", "false"))
    assert files.read("acme") == CREDS_TEXT.replace("true", "false")
    assert files.path("acme").stat().st_mtime_ns >= mtime


def _header(**fields: object) -> bytes:
    import hashlib
    base: dict[str, object] = {"format": FORMAT, "version": 1, "company": "acme",
                               "sha256": hashlib.sha256(CREDS_TEXT.encode()).hexdigest()}
    base.update(fields)
    return orjson.dumps(base)


@pytest.mark.parametrize(("case", "content", "says"), [
    ("other version", _header(version=2) + b"\n" + CREDS_TEXT.encode(), "version 2"),
    ("other company", _header(company="beta") + b"\n" + CREDS_TEXT.encode(), "belongs to"),
    ("bad checksum", _header() + b"\n" + CREDS_TEXT.replace("5511", "5512").encode(),
     "checksum"),
    ("no header", CREDS_TEXT.encode(), "not a creds cache"),
    ("garbage", b"\x00\xff\xfe garbage", "not a creds cache"),
])
def test_untrusted_creds_files_are_ignored_with_a_warning(
        tmp_path: Path, case: str, content: bytes, says: str,
        caplog: pytest.LogCaptureFixture) -> None:
    files = CredsFileCache(tmp_path / "creds")
    files.path("acme").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="harness.authstate.resilient"):
        assert files.read("acme") is None, case
    assert any(says in r.getMessage() for r in caplog.records), caplog.text
    assert "5511999" not in caplog.text  # never the creds themselves
    assert files.path("acme").read_bytes() == content  # ignored, not deleted


def test_missing_creds_file_reads_as_none(tmp_path: Path) -> None:
    assert CredsFileCache(tmp_path / "creds").read("nobody") is None


def test_put_many_accounts_like_put_and_stays_bounded() -> None:
    one, many = ByteLRU(max_bytes=50_000), ByteLRU(max_bytes=50_000)
    rows = [("pre-key", str(i), "k" * (i % 7 * 40)) for i in range(300)]
    rows += [("pre-key", "3", None), ("session", "x", "s" * 100)]
    for t, i, v in rows:
        one.put(("acme", t, i), v)
    many.put_many("acme", rows)
    assert many.bytes == one.bytes <= 50_000
    assert len(many) == len(one)
    assert many.get(("acme", "pre-key", "3")) is None
    many.drop_company("acme")
    assert many.bytes == 0 and len(many) == 0


def test_an_older_creds_version_never_replaces_a_newer_file(tmp_path: Path) -> None:
    files = CredsFileCache(tmp_path / "creds")
    newer = CREDS_TEXT.replace("true", "false")
    assert files.write("acme", newer, version=2)
    assert not files.write("acme", CREDS_TEXT, version=1)  # came late: refused
    assert CredsFileCache(tmp_path / "creds").read("acme") == newer


def test_concurrent_creds_writes_of_one_company_take_turns_in_their_own_temp_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = CredsFileCache(tmp_path / "creds")
    renamed: list[str] = []
    first_in, release = threading.Event(), threading.Event()
    real_replace = os.replace

    def replace(src: object, dst: object) -> None:
        renamed.append(Path(str(src)).name)
        if len(renamed) == 1:
            first_in.set()
            release.wait(30)
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace)
    newer = CREDS_TEXT.replace("true", "false")
    first = threading.Thread(target=files.write, args=("acme", CREDS_TEXT), kwargs={"version": 1})
    first.start()
    assert first_in.wait(30)
    second = threading.Thread(target=files.write, args=("acme", newer), kwargs={"version": 2})
    second.start()
    second.join(0.3)
    assert len(renamed) == 1  # the second writer waits for the first
    release.set()
    first.join(30)
    second.join(30)
    assert len(renamed) == 2 and renamed[0] != renamed[1]
    assert files.read("acme") == newer
    assert [p.name for p in (tmp_path / "creds").iterdir()] == ["acme.json"]
