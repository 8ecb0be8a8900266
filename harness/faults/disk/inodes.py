"""Files and directories of the fault-injecting filesystem, each with two states.

`live` is what every process sees now (the page cache); `durable` is what a power loss keeps.
A file's unsynced changes are kept as an ordered list of operations (`Write`, `Truncate`), so
that a sync can persist all of them, and a fault can persist part of them (a prefix of the last
write, a subset of sectors) or none. A directory's `entries` (name -> inode) become its
`durable_entries` only when the directory itself is fsynced: a create, rename or unlink that no
directory fsync followed is undone by a power loss, as POSIX allows (and as ext4, XFS and btrfs
may do, whatever they happen to do on a quiet day).
"""

from __future__ import annotations

import itertools
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

FILE, DIR = "file", "dir"


@dataclass(frozen=True)
class Write:
    seq: int  # global order of unsynced operations (the "last write" of torn-op)
    offset: int
    data: bytes


@dataclass(frozen=True)
class Truncate:
    seq: int
    size: int


Pending = Write | Truncate
_seqs = itertools.count(1)


def next_seq() -> int:
    return next(_seqs)


def apply(content: bytearray, op: Pending) -> None:
    """Apply one operation to a file's bytes (a write past the end fills the gap with zeros)."""
    if isinstance(op, Truncate):
        if op.size < len(content):
            del content[op.size:]
        else:
            content.extend(bytes(op.size - len(content)))
        return
    end = op.offset + len(op.data)
    if op.offset > len(content):
        content.extend(bytes(op.offset - len(content)))
    content[op.offset:end] = op.data


@dataclass(eq=False)
class Inode:
    """One file or directory; compared by identity (two names may lead to the same one)."""

    ino: int
    kind: str
    mode: int  # type and permission bits, as st_mode
    uid: int = 0
    gid: int = 0
    mtime_ns: int = field(default_factory=time.time_ns)
    ctime_ns: int = field(default_factory=time.time_ns)
    # files
    live: bytearray = field(default_factory=bytearray)
    durable: bytearray = field(default_factory=bytearray)
    pending: list[Pending] = field(default_factory=list)
    # directories
    entries: dict[str, Inode] = field(default_factory=dict)
    durable_entries: dict[str, Inode] = field(default_factory=dict)

    @property
    def is_dir(self) -> bool:
        return self.kind == DIR

    @property
    def unsynced_bytes(self) -> int:
        return sum(len(op.data) for op in self.pending if isinstance(op, Write))

    @property
    def dir_dirty(self) -> bool:
        return self.is_dir and not _same_entries(self.entries, self.durable_entries)

    def touch(self) -> None:
        self.mtime_ns = self.ctime_ns = time.time_ns()

    def stat(self) -> dict[str, int]:
        size = len(self.live) if not self.is_dir else 4096
        nlink = 2 + sum(1 for c in self.entries.values() if c.is_dir) if self.is_dir else 1
        return {"st_ino": self.ino, "st_mode": self.mode, "st_nlink": nlink, "st_size": size,
                "st_uid": self.uid, "st_gid": self.gid, "st_blksize": 4096,
                "st_blocks": (size + 511) // 512, "st_atime": self.mtime_ns,
                "st_mtime": self.mtime_ns, "st_ctime": self.ctime_ns}

    def persist(self, ops: Iterable[Pending]) -> None:
        for op in ops:
            apply(self.durable, op)

    def forget(self) -> None:
        """A power loss: the live state becomes the durable one."""
        if self.is_dir:
            self.entries = dict(self.durable_entries)
        else:
            self.live = bytearray(self.durable)
            self.pending.clear()


def new_inode(ino: int, kind: str, perm: int) -> Inode:
    mode = (stat.S_IFDIR if kind == DIR else stat.S_IFREG) | (perm & 0o7777)
    return Inode(ino, kind, mode)


def _same_entries(a: dict[str, Inode], b: dict[str, Inode]) -> bool:
    return a.keys() == b.keys() and all(a[k] is b[k] for k in a)


def entry_changes(directory: Inode) -> tuple[list[str], list[str]]:
    """(names whose live entry is new or points elsewhere, names gone from the live view)
    relative to the durable entries."""
    live, durable = directory.entries, directory.durable_entries
    changed = sorted(n for n, child in live.items() if durable.get(n) is not child)
    gone = sorted(n for n in durable if n not in live)
    return changed, gone


def walk(root: Inode, *, durable: bool) -> Iterator[tuple[str, Inode]]:
    """(path, inode) of every inode reachable from root in the live or the durable tree;
    "/" for the root. Cycles (possible in the durable tree after cross-directory renames that
    were fsynced in an odd order) are visited once."""
    seen: set[int] = set()
    stack: list[tuple[str, Inode]] = [("/", root)]
    while stack:
        path, node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield path, node
        if node.is_dir:
            children = node.durable_entries if durable else node.entries
            base = path.rstrip("/")
            stack.extend((f"{base}/{name}", child) for name, child in children.items())
