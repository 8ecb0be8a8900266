"""The write-ahead journal on a real file: durability, group commit, markers, compaction, torn
tails, corruption, the size cap and the directory lock."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.authstate.resilient import dirlock
from harness.authstate.resilient.dirlock import DirectoryLock
from harness.authstate.resilient.errors import JournalCorrupt, JournalError, JournalLocked
from harness.authstate.resilient.journal import HEADER, Journal, JournalFull, frame
from harness.authstate.resilient.records import JournalRecord


async def _open(path: Path, **kw: int) -> Journal:
    return await asyncio.to_thread(Journal.open, path, **kw)


def _rows(n: int, tag: str = "v") -> list[tuple[str, str, str | None]]:
    return [("session", f"{i}.0", f'{{"{tag}":{i}}}') for i in range(n)]


def _summary(records: list[JournalRecord] | object) -> list[tuple[object, ...]]:
    return [(r.seq, r.company, r.kind, r.at, [list(row) for row in r.rows], r.creds)  # type: ignore[attr-defined]
            for r in records]  # type: ignore[attr-defined]


async def test_appended_records_are_pending_after_reopen(tmp_path: Path) -> None:
    path = tmp_path / "journal.wal"
    j = await _open(path)
    await j.append("acme", "keys", 1.5, rows=[("pre-key", "1", '{"a":1}'), ("pre-key", "2", None)])
    await j.append("acme", "creds", 2.5, creds='{"me":1}')
    written = _summary(j.pending)
    await j.close()

    again = await _open(path)
    try:
        assert _summary(again.pending) == written
        assert [r.seq for r in again.pending] == [1, 2]
        assert again.recovered == 2
        record = await again.append("beta", "keys", 3.0, rows=_rows(1))
        assert record.seq == 3  # sequence numbers continue after reopen
    finally:
        await again.close()


async def test_journal_file_is_0600(tmp_path: Path) -> None:
    j = await _open(tmp_path / "journal.wal")
    await j.close()
    assert (tmp_path / "journal.wal").stat().st_mode & 0o777 == 0o600


async def test_concurrent_appenders_share_fsyncs(tmp_path: Path) -> None:
    j = await _open(tmp_path / "journal.wal")
    try:
        await asyncio.gather(*(j.append(f"c{i}", "keys", float(i), rows=_rows(3))
                               for i in range(200)))
        assert j.appended == 200
        assert 1 <= j.fsyncs < 200 / 4, f"{j.fsyncs} fsyncs for 200 concurrent appends"
    finally:
        await j.close()
    again = await _open(tmp_path / "journal.wal")
    assert len(again.pending) == 200
    await again.close()


async def test_applied_marker_skips_records_on_reopen(tmp_path: Path) -> None:
    path = tmp_path / "journal.wal"
    j = await _open(path)
    for i in range(3):
        await j.append("acme", "keys", float(i), rows=_rows(2, tag=str(i)))
    await j.mark_applied(j.take(max_rows=4))  # the first two records
    assert [r.seq for r in j.pending] == [3]
    await j.close()
    again = await _open(path)
    try:
        assert [r.seq for r in again.pending] == [3]
    finally:
        await again.close()


async def test_compaction_keeps_only_pending_records(tmp_path: Path) -> None:
    path = tmp_path / "journal.wal"
    j = await _open(path)
    for i in range(5):
        await j.append("acme", "keys", float(i), rows=_rows(10, tag=str(i)))
    await j.mark_applied(j.take(max_rows=30))  # 3 of 5
    before = path.stat().st_size
    assert await j.compact()
    assert path.stat().st_size < before
    assert j.size == path.stat().st_size
    await j.append("acme", "creds", 9.0, creds="{}")  # appends go to the new file
    await j.mark_applied(j.take(max_rows=100))
    assert not j.pending
    assert await j.compact()
    assert path.read_bytes() == HEADER
    await j.close()
    again = await _open(path)
    assert not again.pending
    await again.close()


async def test_reopen_of_a_fully_applied_journal_starts_clean(tmp_path: Path) -> None:
    path = tmp_path / "journal.wal"
    j = await _open(path)
    await j.append("acme", "keys", 1.0, rows=_rows(3))
    await j.mark_applied(list(j.pending))
    await j.close()
    again = await _open(path)
    await again.close()
    assert path.read_bytes() == HEADER


@pytest.mark.parametrize("tail", ["half-record", "zeros", "bad-checksum"])
async def test_torn_tail_is_truncated_with_a_warning(tmp_path: Path, tail: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "journal.wal"
    j = await _open(path)
    await j.append("acme", "keys", 1.0, rows=_rows(2))
    await j.close()
    valid = path.stat().st_size
    record = JournalRecord(2, "acme", "keys", 2.0, rows=_rows(2))
    framed = frame(record.payload())
    damaged = {"half-record": framed[: len(framed) // 2],
               "zeros": bytes(4096),
               "bad-checksum": framed[:-1] + bytes([framed[-1] ^ 0xFF])}[tail]
    path.write_bytes(path.read_bytes() + damaged)

    with caplog.at_level(logging.WARNING, logger="harness.authstate.resilient"):
        again = await _open(path)
    try:
        assert [r.seq for r in again.pending] == [1]
        assert again.torn_bytes == len(damaged)
        assert path.stat().st_size == valid
        assert any("interrupted write" in r.getMessage() and "truncated" in r.getMessage()
                   for r in caplog.records)
        assert (await again.append("acme", "keys", 3.0, rows=_rows(1))).seq == 2
    finally:
        await again.close()


async def test_corruption_in_the_middle_stops_open_and_keeps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "journal.wal"
    j = await _open(path)
    for i in range(3):
        await j.append("acme", "keys", float(i), rows=_rows(2, tag=str(i)))
    second_at = len(HEADER) + j.pending[0].nbytes
    await j.close()
    data = bytearray(path.read_bytes())
    data[second_at + 20] ^= 0x01  # a bit flip inside the second record's payload
    path.write_bytes(bytes(data))

    with pytest.raises(JournalCorrupt) as caught:
        await _open(path)
    assert str(path) in caught.value.message
    assert f"byte {second_at}" in caught.value.message
    assert "move the file aside" in (caught.value.hint or "")
    assert path.read_bytes() == bytes(data)  # untouched


async def test_another_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.wal"
    path.write_bytes(HEADER[:8] + (2).to_bytes(2, "big") + HEADER[10:])
    with pytest.raises(JournalError, match="format version 2"):
        await _open(path)


async def test_not_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.wal"
    path.write_bytes(b"hello, this is not a journal at all")
    with pytest.raises(JournalCorrupt, match="not an auth-state journal"):
        await _open(path)


async def test_full_journal_refuses_the_write_and_drops_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.wal"
    j = await _open(path, max_bytes=4096)
    accepted = 0
    with pytest.raises(JournalFull) as caught:
        for i in range(1000):
            await j.append("acme", "keys", float(i), rows=_rows(4, tag=str(i)))
            accepted += 1
    assert "journal is full" in caught.value.message
    assert "journal_max_bytes" in (caught.value.hint or "")
    assert 0 < accepted < 1000
    assert len(j.pending) == accepted
    await j.close()
    again = await _open(path, max_bytes=4096)
    assert len(again.pending) == accepted
    await again.close()


async def test_full_journal_compacts_applied_records_to_make_room(tmp_path: Path) -> None:
    j = await _open(tmp_path / "journal.wal", max_bytes=4096)
    try:
        with pytest.raises(JournalFull):
            for i in range(1000):
                await j.append("acme", "keys", float(i), rows=_rows(4, tag=str(i)))
        await j.mark_applied(list(j.pending))
        await j.append("acme", "keys", 2000.0, rows=_rows(4))  # fits after compaction
        assert j.compactions == 1
        assert len(j.pending) == 1
    finally:
        await j.close()


def test_second_lock_on_a_directory_is_refused(tmp_path: Path) -> None:
    held = DirectoryLock.acquire(tmp_path / "cache")
    try:
        with pytest.raises(JournalLocked, match="in use by another auth-state store"):
            DirectoryLock.acquire(tmp_path / "cache")
        code = ("import sys; from pathlib import Path\n"
                "from harness.authstate.resilient.dirlock import DirectoryLock\n"
                "from harness.authstate.resilient.errors import JournalLocked\n"
                "try:\n    DirectoryLock.acquire(Path(sys.argv[1]))\n"
                "except JournalLocked as e:\n    print(e.message); sys.exit(3)\n")
        child = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")],
                               capture_output=True, text=True, timeout=60)
        assert child.returncode == 3, child.stderr
        assert f"pid {os.getpid()}" in child.stdout
    finally:
        held.release()
    DirectoryLock.acquire(tmp_path / "cache").release()  # free again once released


def test_cache_directory_is_made_private(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o755)
    lock = DirectoryLock.acquire(cache)
    lock.release()
    assert cache.stat().st_mode & 0o777 == 0o700
    assert (cache / "lock").stat().st_mode & 0o777 == 0o600


def test_creating_the_cache_directory_syncs_the_directories_above_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new directory is an entry in its parent: without an fsync of the parent, a power loss
    can take the cache directory (and the journal in it) away."""
    synced: list[Path] = []
    real = dirlock.fsync_dir
    monkeypatch.setattr(dirlock, "fsync_dir", lambda path: (synced.append(Path(path)),
                                                            real(path))[1])
    lock = DirectoryLock.acquire(tmp_path / "a" / "b" / "cache")
    lock.release()
    for created in ("a", "a/b", "a/b/cache"):
        assert (tmp_path / created).parent in synced, (created, synced)
