"""The journal when its disk fails, stalls or its caller is cancelled: nothing acknowledged is
lost, nothing is acknowledged after a failed write, and the file stays readable.

Failures are injected at the journal's file-operations seam (`journal_faults.ScriptedOps`); the
file and the I/O thread are real.
"""

from __future__ import annotations

import asyncio
import errno
from pathlib import Path

import pytest
from journal_faults import Block, ScriptedOps, fail, half

from harness.authstate.resilient.errors import JournalError, JournalWriteFailed
from harness.authstate.resilient.journal import Journal

GUARD_S = 20.0  # a journal call that hangs fails the test instead of hanging it


async def _open(path: Path, ops: ScriptedOps, **kw: float) -> Journal:
    return await asyncio.to_thread(Journal.open, path, ops=ops, **kw)  # type: ignore[arg-type]


def _rows(n: int, tag: str = "v", size: int = 10) -> list[tuple[str, str, str | None]]:
    return [("session", f"{i}.0", f'{{"{tag}":"{"x" * size}"}}') for i in range(n)]


async def _pending_after_reopen(path: Path) -> list[int]:
    again = await asyncio.to_thread(Journal.open, path)
    try:
        return [r.seq for r in again.pending]
    finally:
        await again.close()


async def test_cancelled_compaction_keeps_the_writes_acknowledged_after_it(tmp_path: Path) -> None:
    """Near the cap a large append starts a compaction; a small append waits behind it; the
    large one is cancelled while the worker renames the new file into place. The small one is
    acknowledged, so it must be in the file that bears the journal's name."""
    path, ops = tmp_path / "journal.wal", ScriptedOps()
    j = await _open(path, ops, max_bytes=4096)
    for i in range(3):
        await j.append("acme", "keys", float(i), rows=_rows(4, str(i), size=150))
    await j.mark_applied(list(j.pending))  # all applied: compaction can free the room
    rename = Block()
    ops.script("replace", rename)
    large = asyncio.create_task(j.append("acme", "keys", 10.0, rows=_rows(4, "L", size=400)))
    await rename.wait_entered()  # the compaction's new file is written, the rename held
    small = asyncio.create_task(j.append("acme", "creds", 11.0, creds='{"small":1}'))
    await asyncio.sleep(0.05)  # the small append is queued behind the compaction
    large.cancel()
    await asyncio.sleep(0.05)
    rename.release()
    async with asyncio.timeout(GUARD_S):
        acked = await small
    with pytest.raises(asyncio.CancelledError):
        await large
    await j.close()
    assert acked.seq in await _pending_after_reopen(path)


@pytest.mark.parametrize("fault", ["short-write-enospc", "fdatasync-eio"])
async def test_first_failed_write_fails_every_later_group_and_leaves_the_last_ack(
        tmp_path: Path, fault: str) -> None:
    path, ops = tmp_path / "journal.wal", ScriptedOps()
    j = await _open(path, ops)
    a = await j.append("acme", "keys", 1.0, rows=_rows(3, "a"))
    acked_size = path.stat().st_size
    if fault == "short-write-enospc":  # half of B's bytes land, then the disk is full
        hold = Block(then=half())
        ops.script("write", hold, fail(errno.ENOSPC))
    else:  # B is written, its fdatasync reports EIO (the kernel may have dropped the pages)
        hold = Block()
        ops.script("write", hold)
        ops.script("fdatasync", fail(errno.EIO))
    b = asyncio.create_task(j.append("acme", "keys", 2.0, rows=_rows(3, "b")))
    await hold.wait_entered()
    c = asyncio.create_task(j.append("acme", "keys", 3.0, rows=_rows(3, "c")))
    await asyncio.sleep(0.05)  # C waits for the next group
    hold.release()
    async with asyncio.timeout(GUARD_S):
        results = await asyncio.gather(b, c, return_exceptions=True)
    assert all(isinstance(r, JournalError) for r in results), results  # C never acknowledged
    assert path.stat().st_size == acked_size  # back to the last acknowledged record
    with pytest.raises(JournalError):  # and it stays refused
        await j.append("acme", "keys", 4.0, rows=_rows(1, "d"))
    await j.close()
    assert await _pending_after_reopen(path) == [a.seq]  # readable: no "corrupt" file
    assert isinstance(results[0], JournalWriteFailed)
    assert results[0].maybe_written is False  # truncated back: definitely not written


async def test_mark_applied_after_a_failed_write_forgets_the_records_and_rebuilds(
        tmp_path: Path) -> None:
    """The replay has put A and B into PostgreSQL after the journal failed: marking them
    applied must work (else the replay applies them again on every probe, for ever), and the
    file is rebuilt from memory so the journal takes writes again."""
    path, ops = tmp_path / "journal.wal", ScriptedOps()
    j = await _open(path, ops)
    applied = [await j.append("acme", "keys", float(i), rows=_rows(2, str(i))) for i in (1, 2)]
    ops.script("fdatasync", fail(errno.EIO))
    with pytest.raises(JournalWriteFailed):
        await j.append("acme", "keys", 3.0, rows=_rows(2, "3"))
    async with asyncio.timeout(GUARD_S):
        await j.mark_applied(applied)
    assert not j.pending
    d = await j.append("acme", "keys", 4.0, rows=_rows(2, "4"))  # usable again
    await j.close()
    assert await _pending_after_reopen(path) == [d.seq]


async def test_mark_applied_while_the_disk_still_fails_forgets_the_records(
        tmp_path: Path) -> None:
    path, ops = tmp_path / "journal.wal", ScriptedOps()
    j = await _open(path, ops)
    applied = [await j.append("acme", "keys", 1.0, rows=_rows(2))]
    ops.script("fdatasync", fail(errno.EIO))
    with pytest.raises(JournalWriteFailed):
        await j.append("acme", "keys", 2.0, rows=_rows(2, "2"))
    for call in ("write", "fsync", "fdatasync", "ftruncate", "open_new", "replace"):
        ops.script(call, *[fail(errno.EIO)] * 5)  # no rebuild can succeed now
    async with asyncio.timeout(GUARD_S):
        await j.mark_applied(applied)  # PostgreSQL has them: forgotten, no exception
    assert not j.pending
    with pytest.raises(JournalError):
        await j.append("acme", "keys", 3.0, rows=_rows(1))
    await j.close()


async def test_a_sync_that_hangs_fails_the_write_within_the_sync_deadline(tmp_path: Path) -> None:
    path, ops = tmp_path / "journal.wal", ScriptedOps()
    j = await _open(path, ops)
    j.sync_timeout_s = 0.2
    stuck = Block()
    ops.script("fdatasync", stuck)
    try:
        async with asyncio.timeout(GUARD_S):
            with pytest.raises(JournalWriteFailed) as caught:
                await j.append("acme", "keys", 1.0, rows=_rows(2))
            assert caught.value.maybe_written  # the sync may still complete
            with pytest.raises(JournalError):
                await j.append("acme", "keys", 2.0, rows=_rows(2))
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.001)

            ticker = asyncio.create_task(tick())
            await j.close()  # bounded, while the disk still holds the sync
            ticker.cancel()
        assert stuck.holding and ticks > 1  # the event loop ran while close() waited
    finally:
        stuck.release()


async def test_close_never_blocks_the_event_loop_on_the_disk(tmp_path: Path) -> None:
    """A compaction whose caller was cancelled is still renaming files on the I/O thread when
    the store closes: close() waits (bounded) without freezing the event loop."""
    path, ops = tmp_path / "journal.wal", ScriptedOps()
    j = await _open(path, ops)
    j.sync_timeout_s = 0.2
    await j.append("acme", "keys", 1.0, rows=_rows(2))
    await j.mark_applied(list(j.pending))
    rename = Block()
    ops.script("replace", rename)
    compaction = asyncio.create_task(j.compact())
    await rename.wait_entered()
    compaction.cancel()
    try:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        ticker = asyncio.create_task(tick())
        async with asyncio.timeout(GUARD_S):
            await j.close()
        ticker.cancel()
        assert rename.holding, "close() returned only once the disk let go"
        assert ticks > 1
    finally:
        rename.release()


async def test_compaction_keeps_an_applied_marker_whose_records_are_still_in_memory(
        tmp_path: Path) -> None:
    """mark_applied is cancelled after its marker reached the disk, before it forgot the
    records; a compaction then must not bring those records back as pending."""
    path, ops = tmp_path / "journal.wal", ScriptedOps()
    j = await _open(path, ops)
    done = [await j.append("acme", "keys", float(i), rows=_rows(2, str(i))) for i in (1, 2)]
    kept = await j.append("acme", "keys", 3.0, rows=_rows(2, "3"))
    marker_sync = Block()
    ops.script("fdatasync", marker_sync)
    marking = asyncio.create_task(j.mark_applied(done))
    await marker_sync.wait_entered()
    marking.cancel()
    synced = j.fsyncs
    marker_sync.release()
    async with asyncio.timeout(GUARD_S):
        while j.fsyncs == synced:  # noqa: ASYNC110 - the marker is on disk (no event to wait on)
            await asyncio.sleep(0.01)
    await j.compact()
    await j.close()
    assert await _pending_after_reopen(path) == [kept.seq]
