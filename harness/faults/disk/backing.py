"""The backing directory: a plain copy of the durable state, kept in step with every sync.

It is what a power loss leaves behind, readable with ordinary tools (`backing/journal.wal` holds
exactly the bytes that would survive), and it is where the filesystem starts from when it is
mounted again. The filesystem never reads it while mounted: the durable state is also in memory.
Nothing here is fsynced for real: durability against a real power cut of the test machine is
not what the harness simulates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

from harness.faults.disk.inodes import DIR, FILE, Inode, Pending, Truncate, Write


class Backing:
    """Mirror of the durable tree under `root` (None: memory only)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def path(self, fs_path: str) -> Path | None:
        if self.root is None:
            return None
        return self.root / fs_path.lstrip("/") if fs_path != "/" else self.root

    def load(self, root_inode: Inode, new_ino: Callable[[str, int], Inode]) -> None:
        """Fill the (empty) root from the backing directory: live = durable = what is there."""
        if self.root is None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        root_inode.mode = stat.S_IFDIR | (self.root.stat().st_mode & 0o7777)
        self._load_dir(self.root, root_inode, new_ino)

    def _load_dir(self, directory: Path, node: Inode, new_ino: Callable[[str, int], Inode]) -> None:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                child = new_ino(DIR, info.st_mode)
                self._load_dir(Path(entry.path), child, new_ino)
            elif stat.S_ISREG(info.st_mode):
                child = new_ino(FILE, info.st_mode)
                data = Path(entry.path).read_bytes()
                child.live, child.durable = bytearray(data), bytearray(data)
            else:
                continue  # symlinks, sockets: not part of what a store keeps
            node.entries[entry.name] = node.durable_entries[entry.name] = child

    def apply_ops(self, fs_paths: Iterable[str], ops: list[Pending]) -> None:
        """Persist a file's operations at each of its durable paths."""
        for fs_path in fs_paths:
            target = self.path(fs_path)
            if target is None:
                return
            fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                for op in ops:
                    if isinstance(op, Truncate):
                        os.ftruncate(fd, op.size)
                    elif isinstance(op, Write):
                        os.pwrite(fd, op.data, op.offset)
            finally:
                os.close(fd)

    def remove(self, fs_path: str) -> None:
        target = self.path(fs_path)
        if target is not None:
            self._remove_path(target)

    def materialize(self, fs_path: str, node: Inode) -> None:
        """Write `node`'s durable state (recursively for a directory) at `fs_path`."""
        target = self.path(fs_path)
        if target is None:
            return
        self._materialize(target, node, set())

    def _materialize(self, target: Path, node: Inode, seen: set[int]) -> None:
        if id(node) in seen:  # a cycle in the durable tree: stop there
            return
        seen.add(id(node))
        if target.exists() or target.is_symlink():
            if node.is_dir != (target.is_dir() and not target.is_symlink()):
                self._remove_path(target)
        if node.is_dir:
            target.mkdir(exist_ok=True)
            os.chmod(target, node.mode & 0o7777)
            present = {e.name for e in os.scandir(target)}
            for name in present - node.durable_entries.keys():
                self._remove_path(target / name)
            for name, child in node.durable_entries.items():
                self._materialize(target / name, child, seen)
            return
        tmp = target.with_name(f".{target.name}.backing-tmp")
        tmp.write_bytes(bytes(node.durable))
        os.chmod(tmp, node.mode & 0o7777)
        os.replace(tmp, target)

    @staticmethod
    def _remove_path(target: Path) -> None:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
