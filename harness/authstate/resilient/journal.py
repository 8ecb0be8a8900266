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
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import struct
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
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


class _Group:
    """Appenders waiting for the same write + fdatasync."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = asyncio.Event()
        self.error: BaseException | None = None

    async def wait(self) -> None:
        await self.done.wait()  # cancelling a waiter never cancels the flush
        if self.error is not None:
            raise JournalWriteFailed(f"the journal could not be written: {self.error}",
                               hint="check the disk holding cache_dir (space, permissions, "
                               "I/O errors); the store refuses new journal writes until "
                               "reopened") from self.error


class Journal:
    """Pending records in memory (seq order) and on disk; appends with group commit."""

    def __init__(self, path: Path, fd: int, *, size: int, max_bytes: int, next_seq: int,
                 pending: Iterable[JournalRecord] = (), ops: FileOps = DEFAULT_OPS) -> None:
        self.path = path
        self.ops = ops
        self.max_bytes = max_bytes
        self.size = size  # bytes in the file
        self.pending: collections.deque[JournalRecord] = collections.deque(pending)
        self.pending_rows = sum(r.row_count for r in self.pending)
        self.peak_depth = len(self.pending)
        self.appended = 0  # data records appended by this process
        self.fsyncs = 0
        self.compactions = 0
        self.recovered = len(self.pending)  # pending records found at open
        self.torn_bytes = 0
        self.on_append: Callable[[JournalRecord], None] | None = None
        self._fd = fd
        self._next_seq = next_seq
        self._flushed_seq = next_seq - 1  # highest data seq that is on disk
        self._buffer: list[bytes] = []
        self._buffered = 0
        self._buffer_last_seq = self._flushed_seq
        self._group: _Group | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._io_lock = asyncio.Lock()
        self._failed: BaseException | None = None
        self._closed = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="authstate-journal")

    # -- open / close ----------------------------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
             ops: FileOps = DEFAULT_OPS) -> Journal:
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
                      pending=pending, ops=ops)
        journal.torn_bytes = result.torn_bytes
        if pending:
            log.info("journal %s: %d writes (%d rows) not yet in PostgreSQL; they will be "
                     "replayed", path, len(pending), journal.pending_rows)
        return journal

    async def close(self) -> None:
        """Finish the flush in progress (acknowledged writes stay durable), then close."""
        if self._closed:
            return
        self._closed = True
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)
        self.ops.close(self._fd)
        self._executor.shutdown(wait=True)

    # -- appending -------------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        return len(self.pending)

    @property
    def bytes(self) -> int:
        return self.size + self._buffered

    def _check_usable(self) -> None:
        if self._closed:
            raise JournalError("the journal is closed", hint="the store was closed; reopen it")
        if self._failed is not None:
            raise JournalError(f"an earlier journal write failed: {self._failed}",
                               hint="check the disk holding cache_dir; reopen the store once "
                               "it is fixed")

    async def append(self, company: str, kind: Literal["keys", "creds"], at: float, *,
                     rows: list[Row] | None = None, creds: str | None = None) -> JournalRecord:
        """Add a record and return once it is on disk (fdatasync'ed).

        The record is pending (and `on_append` called) before this waits for the disk, so a
        caller cancelled while waiting cannot leave a record on disk that this process forgot.
        """
        self._check_usable()
        record = JournalRecord(self._next_seq, company, kind, at, rows=rows, creds=creds)
        framed = frame(record.payload())
        if self.bytes + len(framed) > self.max_bytes:
            await self._compact_for(len(framed))
            self._check_usable()
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
        self._buffer_last_seq = record.seq
        group = self._enqueue(framed)
        self.pending.append(record)
        self.pending_rows += record.row_count
        self.appended += 1
        self.peak_depth = max(self.peak_depth, len(self.pending))
        if self.on_append is not None:
            self.on_append(record)
        await group.wait()
        return record

    def _enqueue(self, framed: bytes) -> _Group:
        self._buffer.append(framed)
        self._buffered += len(framed)
        group = self._group
        if group is None:
            group = self._group = _Group()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())
        return group

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while self._buffer:
            async with self._io_lock:
                if not self._buffer:
                    break
                data = b"".join(self._buffer)
                group, self._group = self._group, None
                last_seq = self._buffer_last_seq
                self._buffer.clear()
                self._buffered = 0
                try:
                    await loop.run_in_executor(self._executor, self._write_sync, self._fd, data)
                except OSError as exc:
                    self._failed = exc
                    log.error("journal %s: write failed: %s", self.path, exc)
                    if group is not None:
                        group.error = exc
                else:
                    self.size += len(data)
                    self.fsyncs += 1
                    self._flushed_seq = last_seq
                if group is not None:
                    group.done.set()

    def _write_sync(self, fd: int, data: bytes) -> None:
        self.ops.write_all(fd, data)
        self.ops.fdatasync(fd)

    # -- replay bookkeeping ----------------------------------------------------------------------
    def take(self, max_rows: int) -> list[JournalRecord]:
        """The oldest pending records, at least one, at most about `max_rows` rows."""
        out: list[JournalRecord] = []
        rows = 0
        for record in self.pending:
            if out and rows + record.row_count > max_rows:
                break
            out.append(record)
            rows += record.row_count
        return out

    async def mark_applied(self, records: list[JournalRecord]) -> None:
        """Record durably that `records` (the oldest pending ones) are in PostgreSQL, then
        forget them."""
        if not records:
            return
        self._check_usable()
        through = records[-1].seq
        await self._enqueue(frame(marker_payload(through))).wait()
        while self.pending and self.pending[0].seq <= through:
            self.pending_rows -= self.pending.popleft().row_count

    # -- compaction ------------------------------------------------------------------------------
    async def _compact_for(self, needed: int) -> None:
        live = sum(r.nbytes for r in self.pending if r.seq <= self._flushed_seq)
        if len(HEADER) + live + self._buffered + needed <= self.max_bytes < self.bytes + needed:
            await self.compact()

    async def compact(self) -> bool:
        """Rewrite the file with only the pending records on disk; False if it was already
        minimal. Markers and applied records go; nothing acknowledged is dropped."""
        self._check_usable()
        async with self._io_lock:
            keep = [r for r in self.pending if r.seq <= self._flushed_seq]
            if self.size == len(HEADER) + sum(r.nbytes for r in keep):
                return False
            loop = asyncio.get_running_loop()
            chunks = [HEADER, *(frame(r.payload()) for r in keep)]
            try:
                size, fd = await loop.run_in_executor(self._executor, self._replace_sync,
                                                      chunks)
            except OSError as exc:
                self._failed = exc
                log.error("journal %s: compaction failed: %s", self.path, exc)
                raise JournalError(f"the journal could not be compacted: {exc}",
                                   hint="check the disk holding cache_dir") from exc
            old, self._fd = self._fd, fd
            self.ops.close(old)
            self.size = size
            self.compactions += 1
            return True

    def _replace_sync(self, chunks: list[bytes]) -> tuple[int, int]:
        size = _write_new_file(self.path, chunks, self.ops)
        return size, self.ops.open_append(self.path)
