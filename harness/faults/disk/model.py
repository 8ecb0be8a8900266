"""`LazyDisk`: an in-memory filesystem with a page cache that forgets on command.

The model of LazyFS (Jepsen's FUSE filesystem, "When Amnesia Strikes", VLDB 2024), extended to
the namespace: writes stay in memory until the file is fsynced (fsync and fdatasync alike:
FUSE cannot tell a `sync_file_range` apart, the kernel never forwards it), and creates, renames
and unlinks until their directory is fsynced. A power loss (`power_loss`) throws away whatever
was not synced; its torn variants persist part of the last write (`torn-op`: a prefix of it,
the file's earlier unsynced writes whole) or a subset of its sectors out of order (`torn-seq`).
I/O faults (ENOSPC, EIO, slow or held fsyncs) are in `faultstate`.

Paths are absolute within the filesystem ("/journal.wal"). Every method is thread-safe (FUSE
calls arrive on several threads); fsync delays and holds are waited for outside the lock.
Methods raise `OSError(errno)`; the FUSE adapter (`fusefs.py`) turns that into the reply.
Pure Python and independent of FUSE, so its semantics are unit-tested without a mount.

Not modelled: hard links, symlinks, extended attributes, mmap; metadata changes (chmod,
chown, times) are durable at once.
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.faults.disk.backing import Backing
from harness.faults.disk.faultstate import Counters, Faults, FsyncGate
from harness.faults.disk.inodes import (
    DIR,
    FILE,
    Inode,
    Pending,
    Truncate,
    Write,
    apply,
    entry_changes,
    new_inode,
    next_seq,
    walk,
)

SECTOR = 512  # torn-seq's default unit: what a disk writes atomically
MODES = ("clear", "torn-op", "torn-seq")
_AFFECTED_KEPT = 50  # paths remembered in the counters, for the report


def _fail(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class _SlowRefusal(Exception):
    """An ENOSPC to return after a wait, taken outside the lock."""

    def __init__(self, delay_s: float) -> None:
        super().__init__(delay_s)
        self.delay_s = delay_s


def _parts(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


def _join(directory: str, name: str) -> str:
    return f"{directory.rstrip('/')}/{name}"


class LazyDisk:
    """The filesystem's state; see the module docstring."""

    def __init__(self, backing: Path | None = None) -> None:
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._inos = itertools.count(2)
        self.root = new_inode(1, DIR, 0o755)
        self.backing = Backing(backing)
        self.backing.load(self.root, self._new)
        self.faults = Faults()
        self.counters = Counters()
        self.gate = FsyncGate()
        self._handles: dict[int, Inode] = {}
        self._fhs = itertools.count(1)
        self.epoch = 0  # power losses so far
        self._active = 0
        self._last_op = time.monotonic()

    def _new(self, kind: str, mode: int) -> Inode:
        return new_inode(next(self._inos), kind, mode)

    # -- bookkeeping -----------------------------------------------------------------------------
    @contextmanager
    def operation(self) -> Iterator[None]:
        """Wrap every FUSE call: `wait_idle` waits until none is running."""
        with self._lock:
            self._active += 1
        try:
            yield
        finally:
            with self._lock:
                self._active -= 1
                self._last_op = time.monotonic()
                self._idle.notify_all()

    def wait_idle(self, idle_s: float = 0.05, timeout_s: float = 5.0) -> bool:
        """Wait until no call is running (held fsyncs aside) and none began for `idle_s`: the
        requests a killed process had already sent are then done. False on timeout."""
        give_up = time.monotonic() + timeout_s
        with self._lock:
            while True:
                now = time.monotonic()
                quiet = self._active - self.gate.waiting <= 0 and now - self._last_op >= idle_s
                if quiet:
                    return True
                if now >= give_up:
                    return False
                self._idle.wait(min(idle_s, give_up - now))

    # -- lookups ---------------------------------------------------------------------------------
    def _lookup(self, path: str) -> Inode:
        node = self.root
        for part in _parts(path):
            if not node.is_dir:
                raise _fail(errno.ENOTDIR)
            child = node.entries.get(part)
            if child is None:
                raise _fail(errno.ENOENT)
            node = child
        return node

    def _parent(self, path: str) -> tuple[Inode, str]:
        parts = _parts(path)
        if not parts:
            raise _fail(errno.EBUSY)  # the root has no name to change
        parent = self._lookup("/" + "/".join(parts[:-1]))
        if not parent.is_dir:
            raise _fail(errno.ENOTDIR)
        return parent, parts[-1]

    def _node(self, path: str | None, fh: int | None) -> Inode:
        if fh is not None and fh in self._handles:
            return self._handles[fh]
        if path is None:
            raise _fail(errno.EBADF)
        return self._lookup(path)

    def _open_handle(self, node: Inode) -> int:
        fh = next(self._fhs)
        self._handles[fh] = node
        return fh

    def _durable_paths(self, node: Inode) -> list[str]:
        return [p for p, n in walk(self.root, durable=True) if n is node]

    def _live_path(self, node: Inode) -> str | None:
        return next((p for p, n in walk(self.root, durable=False) if n is node), None)

    def _check_space(self, path: str | None) -> None:
        faults = self.faults
        if faults.enospc_budget is None or faults.enospc_budget > 0:
            return
        self.counters.enospc_errors += 1
        self.counters.failed_at("ENOSPC", path)
        delay = faults.enospc_delay_s
        if faults.enospc_refusals is not None:
            faults.enospc_refusals -= 1
            if faults.enospc_refusals <= 0:  # space came back by itself
                faults.enospc_budget = faults.enospc_refusals = None
        if delay > 0:
            raise _SlowRefusal(delay)
        raise _fail(errno.ENOSPC)

    @contextmanager
    def _refusals_wait(self) -> Iterator[None]:
        """Around a locked section that may refuse for lack of space: a slow refusal waits
        here, with the lock released (other calls go on meanwhile)."""
        try:
            yield
        except _SlowRefusal as refusal:
            time.sleep(refusal.delay_s)
            raise _fail(errno.ENOSPC) from None

    # -- reading ---------------------------------------------------------------------------------
    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, int]:
        with self._lock:
            return self._node(path, fh).stat()

    def readdir(self, path: str) -> list[str]:
        return [name for name, _, _ in self.listing(path)]

    def listing(self, path: str) -> list[tuple[str, int, int]]:
        """(name, inode number, st_mode) of a directory's entries, "." and ".." first."""
        with self._lock:
            node = self._lookup(path)
            if not node.is_dir:
                raise _fail(errno.ENOTDIR)
            return [(".", node.ino, node.mode), ("..", node.ino, node.mode),
                    *((name, child.ino, child.mode) for name, child in node.entries.items())]

    def read(self, path: str | None, size: int, offset: int, fh: int | None) -> bytes:
        with self._lock:
            node = self._node(path, fh)
            if node.is_dir:
                raise _fail(errno.EISDIR)
            return bytes(node.live[offset:offset + size])

    # -- files -----------------------------------------------------------------------------------
    def create(self, path: str, mode: int, uid: int = 0, gid: int = 0) -> int:
        with self._refusals_wait(), self._lock:
            parent, name = self._parent(path)
            node = parent.entries.get(name)
            if node is None:
                self._check_space(path)
                node = self._new(FILE, mode)
                node.uid, node.gid = uid, gid
                parent.entries[name] = node
                parent.touch()
            elif node.is_dir:
                raise _fail(errno.EISDIR)
            return self._open_handle(node)

    def open(self, path: str, flags: int) -> int:
        with self._lock:
            node = self._lookup(path)
            fh = self._open_handle(node)
            if flags & os.O_TRUNC and not node.is_dir:
                self._truncate(node, 0)
            return fh

    def release(self, fh: int) -> None:
        with self._lock:
            self._handles.pop(fh, None)

    def write(self, path: str | None, data: bytes, offset: int, fh: int | None) -> int:
        with self._refusals_wait(), self._lock:
            node = self._node(path, fh)
            if node.is_dir:
                raise _fail(errno.EISDIR)
            if self.faults.take_eio("eio_writes"):
                self.counters.eio_write_errors += 1
                self.counters.failed_at("EIO write", path)
                raise _fail(errno.EIO)
            budget = self.faults.enospc_budget
            if budget is not None:
                self._check_space(path)
                if len(data) > budget:
                    data = data[:budget]
                    self.counters.short_writes += 1
                    self.counters.failed_at("short write", path)
                self.faults.enospc_budget = budget - len(data)
            op = Write(next_seq(), offset, bytes(data))
            apply(node.live, op)
            node.pending.append(op)
            node.touch()
            self.counters.writes += 1
            self.counters.bytes_written += len(data)
            return len(data)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> None:
        with self._lock:
            node = self._node(path, fh)
            if node.is_dir:
                raise _fail(errno.EISDIR)
            self._truncate(node, length)

    def _truncate(self, node: Inode, length: int) -> None:
        op = Truncate(next_seq(), length)
        apply(node.live, op)
        node.pending.append(op)
        node.touch()

    # -- namespace -------------------------------------------------------------------------------
    def mkdir(self, path: str, mode: int, uid: int = 0, gid: int = 0) -> None:
        with self._refusals_wait(), self._lock:
            parent, name = self._parent(path)
            if name in parent.entries:
                raise _fail(errno.EEXIST)
            self._check_space(path)
            node = self._new(DIR, mode)
            node.uid, node.gid = uid, gid
            parent.entries[name] = node
            parent.touch()

    def unlink(self, path: str) -> None:
        with self._lock:
            parent, name = self._parent(path)
            node = parent.entries.get(name)
            if node is None:
                raise _fail(errno.ENOENT)
            if node.is_dir:
                raise _fail(errno.EISDIR)
            del parent.entries[name]
            parent.touch()

    def rmdir(self, path: str) -> None:
        with self._lock:
            parent, name = self._parent(path)
            node = parent.entries.get(name)
            if node is None:
                raise _fail(errno.ENOENT)
            if not node.is_dir:
                raise _fail(errno.ENOTDIR)
            if node.entries:
                raise _fail(errno.ENOTEMPTY)
            del parent.entries[name]
            parent.touch()

    def rename(self, old: str, new: str) -> None:
        with self._lock:
            src, src_name = self._parent(old)
            node = src.entries.get(src_name)
            if node is None:
                raise _fail(errno.ENOENT)
            dst, dst_name = self._parent(new)
            if node.is_dir and any(n is dst for _, n in walk(node, durable=False)):
                raise _fail(errno.EINVAL)  # into itself
            existing = dst.entries.get(dst_name)
            if existing is node:
                return
            if existing is not None:
                if existing.is_dir and not node.is_dir:
                    raise _fail(errno.EISDIR)
                if node.is_dir and not existing.is_dir:
                    raise _fail(errno.ENOTDIR)
                if existing.is_dir and existing.entries:
                    raise _fail(errno.ENOTEMPTY)
            del src.entries[src_name]
            dst.entries[dst_name] = node
            src.touch()
            dst.touch()

    def chmod(self, path: str | None, mode: int, fh: int | None = None) -> None:
        with self._lock:
            node = self._node(path, fh)
            node.mode = (node.mode & ~0o7777) | (mode & 0o7777)
            node.ctime_ns = time.time_ns()

    def chown(self, path: str | None, uid: int, gid: int) -> None:
        with self._lock:
            node = self._node(path, None)
            if uid != -1:
                node.uid = uid
            if gid != -1:
                node.gid = gid

    def utimens(self, path: str | None, times: tuple[int, int] | None) -> None:
        with self._lock:
            node = self._node(path, None)
            node.mtime_ns = times[1] if times else time.time_ns()

    def statfs(self) -> dict[str, int]:
        with self._lock:
            budget = self.faults.enospc_budget
            free = (1 << 20) if budget is None else budget // 4096
            return {"f_bsize": 4096, "f_frsize": 4096, "f_blocks": 1 << 20, "f_bfree": free,
                    "f_bavail": free, "f_files": 1 << 16, "f_ffree": 1 << 15,
                    "f_favail": 1 << 15, "f_namemax": 255}

    # -- syncing ---------------------------------------------------------------------------------
    def _gate(self) -> int:
        """Wait out a delay or hold (outside the lock); the epoch at entry."""
        with self._lock:
            delay, epoch = self.faults.fsync_delay_s, self.epoch
        delayed, held = self.gate.wait(delay)
        with self._lock:
            self.counters.fsyncs_delayed += int(delayed)
            self.counters.fsyncs_held += int(held)
        return epoch

    def fsync(self, path: str | None, fh: int | None = None) -> None:
        """fsync / fdatasync of a file: its unsynced writes become durable."""
        epoch = self._gate()
        with self._lock:
            if self.epoch != epoch:  # the power went while it waited: never synced
                raise _fail(errno.EIO)
            node = self._node(path, fh)
            if node.is_dir:
                self._fsync_dir(node)
                return
            self.counters.fsyncs += 1
            if self.faults.take_eio("eio_fsyncs"):
                dropped = node.unsynced_bytes
                node.pending = []  # fsyncgate: the pages are clean now, and never written
                self.counters.eio_fsync_errors += 1
                self.counters.failed_at("EIO fsync", path)
                self.counters.bytes_dropped_by_failed_fsync += dropped
                raise _fail(errno.EIO)
            self._persist(node, node.pending)
            node.pending = []

    def fsyncdir(self, path: str | None, fh: int | None = None) -> None:
        """fsync of a directory: its creates, renames and unlinks become durable."""
        epoch = self._gate()
        with self._lock:
            if self.epoch != epoch:
                raise _fail(errno.EIO)
            node = self._node(path, None) if path is not None else self._node(None, fh)
            if not node.is_dir:
                raise _fail(errno.ENOTDIR)
            self._fsync_dir(node)

    def _fsync_dir(self, node: Inode) -> None:
        self.counters.dir_fsyncs += 1
        if self.faults.take_eio("eio_fsyncs"):
            self.counters.eio_fsync_errors += 1
            self.counters.failed_at("EIO directory fsync", None)
            raise _fail(errno.EIO)
        changed, gone = entry_changes(node)
        if not changed and not gone:
            return
        places = self._durable_paths(node)
        node.durable_entries = dict(node.entries)
        for place in places:
            for name in gone:
                self.backing.remove(_join(place, name))
            for name in changed:
                self.backing.materialize(_join(place, name), node.durable_entries[name])

    def _persist(self, node: Inode, ops: list[Pending]) -> None:
        if ops:
            node.persist(ops)
            self.backing.apply_ops(self._durable_paths(node), ops)

    # -- faults ----------------------------------------------------------------------------------
    def set_faults(self, **changes: Any) -> dict[str, Any]:
        with self._lock:
            for key, value in changes.items():
                if not hasattr(self.faults, key):
                    raise ValueError(f"unknown fault {key!r}")
                setattr(self.faults, key, value)
            return self.faults.to_dict()

    def clear_faults(self) -> dict[str, Any]:
        with self._lock:
            self.faults = Faults()
        self.gate.release()
        return self.faults.to_dict()

    def power_loss(self, mode: str = "clear", *, keep_bytes: int | None = None,
                   fraction: float | None = None, seed: int = 0,
                   unit: int = SECTOR) -> dict[str, Any]:
        """Forget everything unsynced (see the module docstring for the torn modes); the
        report says what was lost."""
        if mode not in MODES:
            raise ValueError(f"unknown power-loss mode {mode!r} (one of {', '.join(MODES)})")
        with self._lock:
            self.epoch += 1
            live_paths = {id(n): p for p, n in walk(self.root, durable=False)}
            nodes = self._all_nodes()
            files = {live_paths.get(id(n), "(unlinked)"): n.unsynced_bytes for n in nodes
                     if not n.is_dir and n.pending}
            writes_total = sum(1 for n in nodes for op in n.pending if isinstance(op, Write))
            unsynced = sum(n.unsynced_bytes for n in nodes)
            torn: dict[str, Any] | None = None
            kept_bytes = kept_writes = 0
            if mode != "clear":
                torn = (self._tear_last_write(nodes, keep_bytes, fraction) if mode == "torn-op"
                        else self._tear_sequence(nodes, seed, unit))
                if torn is not None:
                    torn["path"] = live_paths.get(id(torn.pop("node")), "(unlinked)")
                    kept_bytes, kept_writes = torn["kept_bytes"], torn["whole_writes_kept"]
            undone = self._namespace_changes(nodes, live_paths)
            for node in nodes:
                node.forget()
            c = self.counters
            c.power_losses += 1
            c.bytes_dropped += unsynced - kept_bytes
            c.writes_dropped += writes_total - kept_writes
            c.torn_bytes_kept += kept_bytes
            c.files_affected += len(files)
            c.names_undone += len(undone)
            c.affected_paths = (c.affected_paths + sorted(files))[-_AFFECTED_KEPT:]
            return {"mode": mode, "epoch": self.epoch, "bytes_dropped": unsynced - kept_bytes,
                    "writes_dropped": writes_total - kept_writes, "unsynced_bytes": unsynced,
                    "files": files, "files_affected": len(files), "names_undone": undone,
                    "torn": torn}

    def _all_nodes(self) -> list[Inode]:
        seen: dict[int, Inode] = {}
        for durable in (False, True):
            for _, node in walk(self.root, durable=durable):
                seen.setdefault(id(node), node)
        for node in self._handles.values():
            seen.setdefault(id(node), node)
        return list(seen.values())

    def _namespace_changes(self, nodes: list[Inode], live_paths: dict[int, str]) -> list[str]:
        undone: list[str] = []
        for node in nodes:
            if not node.is_dir or not node.dir_dirty:
                continue
            where = live_paths.get(id(node), "(removed directory)")
            changed, gone = entry_changes(node)
            undone += [f"+{_join(where, n)}" for n in changed]
            undone += [f"-{_join(where, n)}" for n in gone]
        return sorted(undone)

    def _tear_candidates(self, nodes: list[Inode]) -> list[Inode]:
        """Files whose torn write would be seen after the power loss: those with a durable
        name (a journal appended to), unless no such file has unsynced writes."""
        named = {id(n) for _, n in walk(self.root, durable=True)}
        written = [n for n in nodes if not n.is_dir and n.unsynced_bytes]
        return [n for n in written if id(n) in named] or written

    def _tear_last_write(self, nodes: list[Inode], keep_bytes: int | None,
                         fraction: float | None) -> dict[str, Any] | None:
        """torn-op: the file of the most recent unsynced write (to a durably named file, see
        `_tear_candidates`) keeps its earlier unsynced operations whole and a prefix of that
        write; nothing else unsynced survives."""
        candidates = self._tear_candidates(nodes)
        last = max(((op.seq, n, i) for n in candidates for i, op in enumerate(n.pending)
                    if isinstance(op, Write)), default=None, key=lambda t: t[0])
        if last is None:
            return None
        _, node, index = last
        write = node.pending[index]
        assert isinstance(write, Write)
        size = len(write.data)
        keep = keep_bytes if keep_bytes is not None else int(size * (
            0.5 if fraction is None else fraction))
        keep = max(0, min(keep, size - 1))  # torn: never the whole write
        before = node.pending[:index]
        persisted = [*before, *([Write(write.seq, write.offset, write.data[:keep])]
                                if keep else [])]
        self._persist(node, persisted)
        whole = sum(1 for op in before if isinstance(op, Write))
        return {"node": node, "offset": write.offset, "write_bytes": size, "kept_bytes":
                keep + sum(len(op.data) for op in before if isinstance(op, Write)),
                "torn_write_kept_bytes": keep, "whole_writes_kept": whole,
                "earlier_ops_kept": len(before)}

    def _tear_sequence(self, nodes: list[Inode], seed: int, unit: int) -> dict[str, Any] | None:
        """torn-seq: the sectors (`unit` bytes, aligned in the file) of the unsynced writes of
        the most recently written (durably named) file are persisted as a random subset that
        always holds the last one and always misses an earlier one: what reaches the disk is
        not a prefix of what was written. Nothing else unsynced survives."""
        if unit <= 0:
            raise ValueError("unit must be positive")
        last = max(((op.seq, n) for n in self._tear_candidates(nodes) for op in n.pending
                    if isinstance(op, Write)), default=None, key=lambda t: t[0])
        if last is None:
            return None
        node = last[1]
        pieces: list[Write] = []
        for op in node.pending:
            if not isinstance(op, Write):
                continue
            pos = op.offset
            end = op.offset + len(op.data)
            while pos < end:
                cut = min(end, (pos // unit + 1) * unit)
                pieces.append(Write(op.seq, pos, op.data[pos - op.offset:cut - op.offset]))
                pos = cut
        rng = random.Random(seed)
        chosen: list[Write] = []
        if len(pieces) >= 2:
            skipped = rng.randrange(len(pieces) - 1)  # this earlier one never lands
            chosen = [p for i, p in enumerate(pieces[:-1])
                      if i != skipped and rng.random() < 0.5] + [pieces[-1]]
            rng.shuffle(chosen)
        self._persist(node, list(chosen))
        return {"node": node, "unit": unit, "pieces": len(pieces), "pieces_kept": len(chosen),
                "kept_bytes": sum(len(p.data) for p in chosen), "whole_writes_kept": 0,
                "reordered": len(pieces) >= 2,
                "kept_offsets": sorted(p.offset for p in chosen)[:64]}

    # -- report ----------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        with self._lock:
            live_paths = {id(n): p for p, n in walk(self.root, durable=False)}
            nodes = self._all_nodes()
            files = {live_paths.get(id(n), "(unlinked)"): n.unsynced_bytes for n in nodes
                     if not n.is_dir and n.unsynced_bytes}
            dirty = sorted(live_paths.get(id(n), "(removed directory)") for n in nodes
                           if n.dir_dirty)
            return {"unsynced_bytes": sum(files.values()), "unsynced_files": files,
                    "dirty_dirs": dirty, "faults": self.faults.to_dict(),
                    "fsync_hold": self.gate.held, "fsyncs_waiting": self.gate.waiting,
                    "epoch": self.epoch, "active_ops": self._active,
                    "counters": self.counters.to_dict()}
