"""The write-ahead journal: acknowledged writes that PostgreSQL does not have yet, on local disk.

File `<cache_dir>/journal.wal` (0600):

    header   8 bytes magic b"AHJOURNL", u16 format version, u16 flags, 4 reserved
    records  b"\\xa5\\x5a", u32 payload length, u32 CRC32 (of the length bytes and payload),
             payload (see `records`): data records and "applied through seq N" markers

A write is acknowledged only after its record is written and fdatasync'ed. Concurrent appenders
share one write + fdatasync (group commit): the first appender starts a flush; whoever appends
while that flush is on disk joins the next one. Disk I/O runs on one dedicated thread, so the
event loop never blocks on it.

On open, records up to the last marker are skipped and the rest are pending again. A damaged
last record with nothing valid after it is a write cut short by a crash (never acknowledged): it
is truncated with a warning. A damaged record with valid records after it is corruption: open
stops with `JournalCorrupt`, naming the file and offset, and leaves the file untouched. When
everything is applied (or the size cap is near and applied records take room), the file is
rewritten with just the pending records (temp file, fsync, rename, directory fsync).

When the disk fails (ENOSPC mid-write, EIO from fdatasync, a sync past `sync_timeout_s`), the
write's group and every later one fail, the file is cut back to the last acknowledged record,
and nothing is written until the file has been rewritten from memory (see `Journal`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import logging
import os
import struct
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import Literal

from harness.authstate.resilient.dirlock import FILE_MODE
from harness.authstate.resilient.errors import JournalCorrupt, JournalError, JournalWriteFailed
from harness.authstate.resilient.fileops import DEFAULT_OPS, FileOps
from harness.authstate.resilient.records import (
    BadPayload,
    JournalRecord,
    Row,
    decode_payload,
    marker_payload,
)

log = logging.getLogger("harness.authstate.resilient")

MAGIC = b"AHJOURNL"
FORMAT_VERSION = 1
_HEADER = struct.Struct(">8sHH4x")
HEADER = _HEADER.pack(MAGIC, FORMAT_VERSION, 0)
RECORD_MAGIC = b"\xa5\x5a"
_FRAME = struct.Struct(">2sII")
FRAME_BYTES = _FRAME.size
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_SYNC_TIMEOUT_S = 5.0
REBUILD_INTERVAL_S = 1.0  # after a failure, an append tries the rewrite at most this often

_HOW_TO_DROP = ("move the file aside to start without it; writes it holds that are not in "
                "PostgreSQL yet would be lost (keep the file for inspection)")


def frame(payload: bytes) -> bytes:
    length = len(payload).to_bytes(4, "big")
    crc = zlib.crc32(payload, zlib.crc32(length))
    return RECORD_MAGIC + length + crc.to_bytes(4, "big") + payload


class JournalFull(JournalError):
    """Appending would take the journal past its size cap (back-pressure, never a drop)."""


@dataclass
class ScanResult:
    records: list[JournalRecord]
    applied_through: int
    valid_end: int  # offset after the last valid record
    torn_bytes: int  # bytes after valid_end: an interrupted write


def _frame_at(data: bytes, offset: int) -> tuple[int, bytes] | str:
    """(end offset, payload) of the record at `offset`, or why there is none."""
    if len(data) - offset < FRAME_BYTES:
        return "incomplete record header"
    magic, length, crc = _FRAME.unpack_from(data, offset)
    if magic != RECORD_MAGIC:
        return "no record marker"
    end = offset + FRAME_BYTES + length
    if end > len(data):
        return f"record of {length} bytes runs past the end of the file"
    payload = data[offset + FRAME_BYTES:end]
    if zlib.crc32(payload, zlib.crc32(length.to_bytes(4, "big"))) != crc:
        return "checksum mismatch"
    return end, payload


def _next_valid_frame(data: bytes, after: int) -> int | None:
    pos = data.find(RECORD_MAGIC, after + 1)
    while pos != -1:
        found = _frame_at(data, pos)
        if not isinstance(found, str):
            with contextlib.suppress(BadPayload):
                decode_payload(found[1])
                return pos
        pos = data.find(RECORD_MAGIC, pos + 1)
    return None


def scan(path: Path, data: bytes) -> ScanResult:
    """Parse a whole journal file; raise JournalCorrupt/JournalError for what must not be
    guessed at."""
    if len(data) < _HEADER.size:
        if HEADER.startswith(data) or not data.strip(b"\x00"):
            return ScanResult([], 0, 0, len(data))  # creation cut short: nothing in it
        raise JournalCorrupt(f"{path} is not an auth-state journal (too short, no header)",
                             hint=_HOW_TO_DROP)
    magic, version, _flags = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise JournalCorrupt(f"{path} is not an auth-state journal (bad magic at byte 0)",
                             hint=_HOW_TO_DROP)
    if version != FORMAT_VERSION:
        raise JournalError(
            f"{path} has journal format version {version}; this store reads version "
            f"{FORMAT_VERSION}",
            hint="open it with the version of the harness that wrote it (it replays it into "
            "PostgreSQL), or " + _HOW_TO_DROP)
    records: list[JournalRecord] = []
    applied = 0
    last_seq = 0
    offset = _HEADER.size
    while offset < len(data):
        found = _frame_at(data, offset)
        if isinstance(found, str):
            follows = _next_valid_frame(data, offset)
            if follows is None:
                return ScanResult(records, applied, offset, len(data) - offset)
            raise JournalCorrupt(
                f"journal {path} is damaged at byte {offset} ({found}) and valid records "
                f"follow at byte {follows}: this is not an interrupted write",
                hint=_HOW_TO_DROP)
        end, payload = found
        try:
            item = decode_payload(payload)
        except BadPayload as exc:
            raise JournalCorrupt(f"journal {path}: record at byte {offset} has a valid "
                                 f"checksum but unreadable content ({exc})",
                                 hint=_HOW_TO_DROP) from None
        if isinstance(item, int):
            applied = max(applied, item)
        else:
            if item.seq <= last_seq:
                raise JournalCorrupt(f"journal {path}: record at byte {offset} has seq "
                                     f"{item.seq} after seq {last_seq}", hint=_HOW_TO_DROP)
            last_seq = item.seq
            item.nbytes = end - offset
            records.append(item)
        offset = end
    return ScanResult(records, applied, offset, 0)


def _write_new_file(path: Path, chunks: Iterable[bytes], ops: FileOps = DEFAULT_OPS) -> int:
    """Atomically replace `path` with `chunks` (temp + fsync + rename + dir fsync); its size."""
    tmp = path.with_name(path.name + ".tmp")
    fd = ops.open_new(tmp)
    size = 0
    try:
        for chunk in chunks:
            ops.write_all(fd, chunk)
            size += len(chunk)
        ops.fsync(fd)
    finally:
        ops.close(fd)
    ops.replace(tmp, path)
    ops.fsync_dir(path.parent)
    return size


class _IOFailed(Exception):
    """An I/O call failed on the journal's thread. `intact`: the journal file is as it was at
    the last acknowledged record (a failed write was truncated away, or a rewrite failed before
    it replaced anything)."""

    def __init__(self, cause: OSError, *, intact: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.intact = intact


class _Group:
    """Appenders (and markers) waiting for the same write + fdatasync."""

    __slots__ = ("done", "error", "markers", "maybe_written", "records")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.error: BaseException | None = None
        self.maybe_written = True
        self.records: list[JournalRecord] = []
        self.markers: list[int] = []

    async def wait(self) -> None:
        await self.done.wait()  # cancelling a waiter never cancels the flush
        if self.error is not None:
            written = ("it may still be in the file" if self.maybe_written else
                       "the file was put back as it was at the last acknowledged write")
            raise JournalWriteFailed(
                f"the journal could not be written ({written}): {self.error}",
                hint="check the disk holding cache_dir (space, permissions, I/O errors); the "
                "store refuses journal writes until it has rewritten the file from memory",
                maybe_written=self.maybe_written) from self.error


def _consume(future: asyncio.Future[object]) -> None:
    """Done-callback of abandoned I/O: its outcome is handled elsewhere; no 'never retrieved'."""
    if not future.cancelled():
        future.exception()


class Journal:
    """Pending records in memory (seq order) and on disk; appends with group commit.

    Disk state (the file descriptor, the size on disk) belongs to the I/O thread: every write,
    rewrite and close runs there in submission order and reads or swaps the descriptor as it
    runs. So a caller that stops waiting (cancelled, or past `sync_timeout_s`) cannot leave the
    event loop's side pointing at a file that was renamed away: the next write simply runs
    after the rewrite, on the new file.

    Failure rule ("fsyncgate"): the first failed write or sync fails its group and every group
    after it; the file is truncated back to the last acknowledged record; nothing is written
    behind a failed write. The journal takes writes again only after it has rewritten the whole
    file from memory (temp file, fsync, rename, directory fsync): at the next `mark_applied` or
    `compact`, or at an append at most once a second.
    """

    def __init__(self, path: Path, fd: int, *, size: int, max_bytes: int, next_seq: int,
                 pending: Iterable[JournalRecord] = (), ops: FileOps = DEFAULT_OPS,
                 sync_timeout_s: float = DEFAULT_SYNC_TIMEOUT_S) -> None:
        self.path = path
        self.ops = ops
        self.max_bytes = max_bytes
        # How long a write + fdatasync (or a rewrite's syncs) may take before the journal
        # treats it as failed: a disk that does not answer must not hold every writer.
        self.sync_timeout_s = sync_timeout_s
        self.pending: collections.deque[JournalRecord] = collections.deque(pending)
        self.pending_rows = sum(r.row_count for r in self.pending)
        self.peak_depth = len(self.pending)
        self.appended = 0  # data records appended by this process
        self.fsyncs = 0
        self.compactions = 0  # counted on the I/O thread: a rewrite counts even if abandoned
        self.rebuilds = 0  # rewrites that made a failed journal usable again
        self.recovered = len(self.pending)  # pending records found at open
        self.torn_bytes = 0
        # Store hooks: a record was queued (it orders later writes of its company), reached
        # the disk (readers may see it now), or failed (it will never be replayed).
        self.on_append: Callable[[JournalRecord], None] | None = None
        self.on_durable: Callable[[JournalRecord], None] | None = None
        self.on_dropped: Callable[[JournalRecord], None] | None = None
        self._fd = fd  # I/O thread only
        self._disk_size = size  # I/O thread only: bytes in the file the journal writes to
        self._in_flight = 0  # bytes handed to the I/O thread, not yet on disk
        self._next_seq = next_seq
        self._flushed_seq = next_seq - 1  # highest data seq that is on disk
        self._applied_through = 0  # highest seq whose "applied" marker is on disk
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._group: _Group | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._io_lock = asyncio.Lock()  # one batch of writes or one rewrite in flight
        self._rewriting: asyncio.Future[object] | None = None
        self._failed: BaseException | None = None
        self._failed_at = 0.0
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="authstate-journal")

    # -- open / close ----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, ops: FileOps = DEFAULT_OPS,
             sync_timeout_s: float = DEFAULT_SYNC_TIMEOUT_S) -> Journal:
        """Open (or create) the journal; blocking file I/O: call it in a thread. `ops`: the
        file operations (tests inject failures through it)."""
        if not path.exists():
            _write_new_file(path, [HEADER], ops)
        data = path.read_bytes()
        result = scan(path, data)
        if result.valid_end == 0:  # no usable header: an interrupted creation
            _write_new_file(path, [HEADER], ops)
            result = ScanResult([], 0, len(HEADER), 0)
        elif result.torn_bytes:
            log.warning("journal %s: %d bytes after byte %d are an interrupted write (a record "
                        "that was never acknowledged); truncated", path, result.torn_bytes,
                        result.valid_end)
            with open(path, "r+b") as f:
                f.truncate(result.valid_end)
                os.fsync(f.fileno())
        if (path.stat().st_mode & 0o777) != FILE_MODE:
            os.chmod(path, FILE_MODE)
        pending = [r for r in result.records if r.seq > result.applied_through]
        last_seq = result.records[-1].seq if result.records else 0
        size = result.valid_end
        if not pending and size > len(HEADER):  # everything applied: start from a clean file
            size = _write_new_file(path, [HEADER], ops)
        fd = ops.open_append(path)
        journal = cls(path, fd, size=size, max_bytes=max_bytes, next_seq=last_seq + 1,
                      pending=pending, ops=ops, sync_timeout_s=sync_timeout_s)
        journal.torn_bytes = result.torn_bytes
        if pending:
            log.info("journal %s: %d writes (%d rows) not yet in PostgreSQL; they will be "
                     "replayed", path, len(pending), journal.pending_rows)
        return journal

    async def close(self) -> None:
        """Finish the flush in progress (acknowledged writes stay durable), then close. Never
        blocks the event loop: a disk that does not answer within `sync_timeout_s` is left to
        finish on the journal's thread, which closes the file when it is done."""
        if self._closed:
            return
        self._closed = True
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)  # each of its waits is bounded
        try:
            await self._io(self._close_sync)
        except TimeoutError:
            log.warning("journal %s: the disk is still busy after %g s; the file will be "
                        "closed when the pending operation ends", self.path, self.sync_timeout_s)
        self._executor.shutdown(wait=False)

    def _close_sync(self) -> None:
        with contextlib.suppress(OSError):
            self.ops.close(self._fd)

    async def _io(self, fn: Callable[..., object], *args: object) -> object:
        """Run `fn` on the I/O thread and wait at most `sync_timeout_s`. When the wait is
        abandoned (timeout, cancellation) the work still completes, in order, on that thread."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        future.add_done_callback(_consume)
        async with asyncio.timeout(self.sync_timeout_s):
            return await asyncio.shield(future)

    # -- appending -------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.pending)

    @property
    def size(self) -> int:
        """Bytes in the journal file (as last written by the I/O thread)."""
        return self._disk_size

    @property
    def bytes(self) -> int:
        return self._disk_size + self._in_flight + self._buffered

    @property
    def failed(self) -> BaseException | None:
        """The I/O error that stopped the journal, until it has been rewritten from memory."""
        return self._failed

    async def _ensure_usable(self) -> None:
        if self._closed:
            raise JournalError("the journal is closed", hint="the store was closed; reopen it")
        if self._failed is not None and monotonic() - self._failed_at >= REBUILD_INTERVAL_S:
            await self._rebuild()
        if self._failed is not None:
            raise JournalError(f"an earlier journal write failed: {self._failed}",
                               hint="check the disk holding cache_dir (space, I/O errors); the "
                               "journal takes writes again once it could rewrite its file")

    async def append(self, company: str, kind: Literal["keys", "creds"], at: float, *,
                     rows: list[Row] | None = None, creds: str | None = None) -> JournalRecord:
        """Add a record and return once it is on disk (fdatasync'ed).

        The record is pending (and `on_append` called) before this waits for the disk, so a
        caller cancelled while waiting cannot leave a record on disk that this process forgot;
        `on_durable` follows once it is on disk, `on_dropped` if the write failed (then it is
        no longer pending).
        """
        await self._ensure_usable()
        record = JournalRecord(self._next_seq, company, kind, at, rows=rows, creds=creds)
        framed = frame(record.payload())
        if self.bytes + len(framed) > self.max_bytes:
            await self._compact_for(len(framed))
            await self._ensure_usable()
            record.seq = self._next_seq  # others may have appended while we compacted
            framed = frame(record.payload())
            if self.bytes + len(framed) > self.max_bytes:
                raise JournalFull(
                    f"the journal is full: {self.bytes} bytes of writes wait for PostgreSQL "
                    f"and this write needs {len(framed)} more (cap {self.max_bytes})",
                    hint="the write was not applied; retry once PostgreSQL is back and the "
                    "journal drains, or raise journal_max_bytes")
        self._next_seq += 1
        record.nbytes = len(framed)
        group = self._enqueue(framed, record=record)
        self.pending.append(record)
        self.pending_rows += record.row_count
        self.appended += 1
        self.peak_depth = max(self.peak_depth, len(self.pending))
        if self.on_append is not None:
            self.on_append(record)
        await group.wait()
        return record

    def _enqueue(self, framed: bytes, *, record: JournalRecord | None = None,
                 marker: int | None = None) -> _Group:
        self._buffer.append(framed)
        self._buffered += len(framed)
        group = self._group
        if group is None:
            group = self._group = _Group()
        if record is not None:
            group.records.append(record)
        if marker is not None:
            group.markers.append(marker)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        return group

    async def _flush_loop(self) -> None:
        while self._buffer:
            async with self._io_lock:
                if not self._buffer:
                    break
                data = b"".join(self._buffer)
                group, self._group = self._group, None
                assert group is not None
                self._buffer.clear()
                self._buffered = 0
                if self._failed is not None:  # never write behind a failed write
                    self._fail_group(group, self._failed, maybe_written=False)
                    continue
                self._in_flight = len(data)
                try:
                    await self._io(self._write_sync, data)
                except _IOFailed as exc:
                    self._stop(exc.cause, "write failed")
                    self._fail_group(group, exc.cause, maybe_written=not exc.intact)
                except TimeoutError:
                    error = OSError(errno.ETIMEDOUT, f"the write or fdatasync did not return "
                                    f"within {self.sync_timeout_s:g} s")
                    self._stop(error, "write timed out")
                    self._fail_group(group, error, maybe_written=True)
                except BaseException as exc:  # the loop is shutting down: nobody may hang
                    self._fail_group(group, exc, maybe_written=True)
                    raise
                else:
                    self.fsyncs += 1
                    if group.records:
                        self._flushed_seq = group.records[-1].seq
                    if group.markers:
                        self._applied_through = max(self._applied_through, *group.markers)
                    if self.on_durable is not None:
                        for record in group.records:
                            self.on_durable(record)
                    group.done.set()
                finally:
                    self._in_flight = 0

    def _stop(self, error: BaseException, what: str) -> None:
        self._failed = error
        self._failed_at = monotonic()
        log.error("journal %s: %s: %s; no more writes until the file is rewritten from memory",
                  self.path, what, error)

    def _fail_group(self, group: _Group, error: BaseException, *, maybe_written: bool) -> None:
        """The group's records were not acknowledged and never will be: out of `pending`."""
        group.error = error
        group.maybe_written = maybe_written
        for record in group.records:
            with contextlib.suppress(ValueError):
                self.pending.remove(record)
                self.pending_rows -= record.row_count
                if self.on_dropped is not None:
                    self.on_dropped(record)
        group.done.set()

    def _write_sync(self, data: bytes) -> None:
        """I/O thread: append + fdatasync; on failure truncate back to the last good byte."""
        fd, start = self._fd, self._disk_size
        try:
            self.ops.write_all(fd, data)
            self.ops.fdatasync(fd)
        except OSError as exc:
            raise _IOFailed(exc, intact=self._truncate_sync(fd, start)) from exc
        self._disk_size = start + len(data)

    def _truncate_sync(self, fd: int, size: int) -> bool:
        try:
            self.ops.ftruncate(fd, size)
            self.ops.fdatasync(fd)
        except OSError as exc:
            log.error("journal %s: could not cut a failed write off (at byte %d): %s; the next "
                      "open finds it as an interrupted write", self.path, size, exc)
            return False
        return True

    async def wait_flushed(self) -> None:
        """Until the writes handed to the journal so far are on disk (or failed)."""
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    # -- replay bookkeeping ----------------------------------------------------------------------
    def take(self, max_rows: int) -> list[JournalRecord]:
        """The oldest pending records that are on disk, at most about `max_rows` rows (at
        least one, unless none is on disk yet)."""
        out: list[JournalRecord] = []
        rows = 0
        for record in self.pending:
            if record.seq > self._flushed_seq:
                break
            if out and rows + record.row_count > max_rows:
                break
            out.append(record)
            rows += record.row_count
        return out

    async def mark_applied(self, records: list[JournalRecord]) -> None:
        """Record durably that `records` (the oldest pending ones) are in PostgreSQL, then
        forget them. They are forgotten even if the marker cannot be written (the journal has
        failed): PostgreSQL has them, and the journal then rewrites its file from memory."""
        if not records:
            return
        if self._closed:
            raise JournalError("the journal is closed", hint="the store was closed; reopen it")
        through = records[-1].seq
        if self._failed is None:
            with contextlib.suppress(JournalWriteFailed):
                await self._enqueue(frame(marker_payload(through)), marker=through).wait()
        while self.pending and self.pending[0].seq <= through:
            self.pending_rows -= self.pending.popleft().row_count
        if self._failed is not None:
            await self._rebuild()

    # -- compaction ------------------------------------------------------------------------------
    def _live(self) -> list[JournalRecord]:
        """Records the file must keep: on disk and not marked applied on disk."""
        return [r for r in self.pending if self._applied_through < r.seq <= self._flushed_seq]

    async def _compact_for(self, needed: int) -> None:
        live = sum(r.nbytes for r in self._live())
        if len(HEADER) + live + self._buffered + needed <= self.max_bytes < self.bytes + needed:
            with contextlib.suppress(JournalError):  # logged; the caller finds no room then
                await self.compact()

    async def compact(self) -> bool:
        """Rewrite the file with only the pending records on disk; False if it was already
        minimal. Markers and applied records go; nothing acknowledged is dropped. On a failed
        journal this is the rewrite from memory that makes it usable again."""
        if self._closed:
            raise JournalError("the journal is closed", hint="the store was closed; reopen it")
        if self._failed is not None:
            return await self._rebuild()
        async with self._io_lock:
            keep = self._live()
            if self._failed is not None or (
                    self._rewriting is not None and not self._rewriting.done()) or (
                    self._disk_size == len(HEADER) + sum(r.nbytes for r in keep)):
                return False
            try:
                await self._rewrite(keep)
            except _IOFailed as exc:
                if not exc.intact:
                    self._stop(exc.cause, "compaction failed after the rename")
                else:
                    log.error("journal %s: compaction failed (the file is unchanged): %s",
                              self.path, exc.cause)
                raise JournalError(f"the journal could not be compacted: {exc.cause}",
                                   hint="check the disk holding cache_dir") from exc.cause
            except TimeoutError:
                raise JournalError(
                    f"the journal's compaction did not finish within {self.sync_timeout_s:g} s "
                    "(it completes in the background)",
                    hint="check the disk holding cache_dir (slow or stalled I/O)") from None
            return True

    async def _rebuild(self) -> bool:
        """After a failure: write the file anew from memory (every pending record on disk) and
        write there from now on. True when the journal is usable again."""
        async with self._io_lock:
            if self._failed is None:
                return True
            if self._closed or (self._rewriting is not None and not self._rewriting.done()):
                return False  # the disk has not finished the previous attempt
            self._failed_at = monotonic()
            try:
                await self._rewrite(self._live())
            except (_IOFailed, TimeoutError) as exc:
                cause = exc.cause if isinstance(exc, _IOFailed) else "timed out"
                log.warning("journal %s: rewriting the file after a failure did not work (%s); "
                            "journal writes stay refused", self.path, cause)
                return False
            self._failed = None
            self.rebuilds += 1
            log.warning("journal %s: file rewritten from memory after a failure; journal writes "
                        "are accepted again", self.path)
            return True

    async def _rewrite(self, keep: list[JournalRecord]) -> None:
        """Caller holds the I/O lock, so no write is in flight and `keep` is complete."""
        chunks = [HEADER, *(frame(r.payload()) for r in keep)]
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._rewrite_sync,
                                                            chunks)
        future.add_done_callback(_consume)
        self._rewriting = future
        async with asyncio.timeout(self.sync_timeout_s):
            await asyncio.shield(future)

    def _rewrite_sync(self, chunks: list[bytes]) -> None:
        """I/O thread: temp file + fsync + rename + directory fsync, then swap the descriptor
        here, in the same step, so whatever runs next writes to the file that has the name."""
        ops, path = self.ops, self.path
        tmp = path.with_name(path.name + ".tmp")
        size = 0
        try:
            fd = ops.open_new(tmp)
            try:
                for chunk in chunks:
                    ops.write_all(fd, chunk)
                    size += len(chunk)
                ops.fsync(fd)
            finally:
                ops.close(fd)
            ops.replace(tmp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                ops.unlink(tmp)  # a full disk gets its space back
            raise _IOFailed(exc, intact=True) from exc
        # The name now holds the new file: from here on only it may be written.
        try:
            new_fd = ops.open_append(path)
        except OSError as exc:
            raise _IOFailed(exc, intact=False) from exc
        old, self._fd = self._fd, new_fd
        self._disk_size = size
        self.compactions += 1
        with contextlib.suppress(OSError):
            ops.close(old)
        try:
            ops.fsync_dir(path.parent)
        except OSError as exc:  # the rename may not survive a power loss: stop until redone
            raise _IOFailed(exc, intact=False) from exc
