"""The FUSE face of `LazyDisk`, through mfusepy (ctypes bindings of libfuse3's high-level API).

Imported only by the filesystem's own process (`server.py`): loading mfusepy loads libfuse.

Mount settings that keep the kernel from remembering what the model forgets:
- `direct_io`: no kernel page cache for file data. Every read and write reaches the model, and
  a short write (ENOSPC mid-write) is returned to the caller as short;
- entry / attribute / negative timeouts 0: names and sizes are asked again every time, so a
  rename or a truncation undone by a power loss is seen at once;
- `hard_remove`: an unlinked open file stays readable through its handle (no hidden renames);
- no `lock` / `flock` operations: the kernel keeps flock and POSIX locks itself (a killed
  holder's lock is released by the kernel, as on any local filesystem).
"""

from __future__ import annotations

import logging
from typing import Any

import mfusepy

from harness.faults.disk.model import LazyDisk

log = logging.getLogger("harness.faults.disk")


class LazyOperations(mfusepy.Operations):  # type: ignore[misc]
    use_ns = True  # times in nanoseconds

    def __init__(self, disk: LazyDisk) -> None:
        self.disk = disk

    def init_with_config(self, conn_info: Any, config: Any) -> None:
        if config is not None:
            config.entry_timeout = 0.0
            config.attr_timeout = 0.0
            config.negative_timeout = 0.0
            config.direct_io = 1
            config.hard_remove = 1
            config.use_ino = 1

    # -- reading ---------------------------------------------------------------------------------
    def getattr(self, path: str | None, fh: int | None = None) -> dict[str, int]:
        with self.disk.operation():
            return self.disk.getattr(path, fh)

    def opendir(self, path: str) -> int:
        return 0

    def readdir(self, path: str, fh: int) -> list[tuple[str, dict[str, int], int]]:
        # With a zero inode number, readdir(3) would skip the entry: give each its own.
        with self.disk.operation():
            return [(name, {"st_ino": ino, "st_mode": mode}, 0)
                    for name, ino, mode in self.disk.listing(path)]

    def releasedir(self, path: str | None, fh: int) -> int:
        return 0

    def read(self, path: str | None, size: int, offset: int, fh: int) -> bytes:
        with self.disk.operation():
            return self.disk.read(path, size, offset, fh)

    def statfs(self, path: str) -> dict[str, int]:
        return self.disk.statfs()

    # -- files -----------------------------------------------------------------------------------
    def create(self, path: str, mode: int, flags: int = 0) -> int:
        uid, gid, _ = mfusepy.fuse_get_context()
        with self.disk.operation():
            return self.disk.create(path, mode, uid, gid)

    def open(self, path: str, flags: int) -> int:
        with self.disk.operation():
            return self.disk.open(path, flags)

    def write(self, path: str | None, data: bytes, offset: int, fh: int) -> int:
        with self.disk.operation():
            return self.disk.write(path, data, offset, fh)

    def truncate(self, path: str | None, length: int, fh: int | None = None) -> int:
        with self.disk.operation():
            self.disk.truncate(path, length, fh)
        return 0

    def flush(self, path: str | None, fh: int) -> int:
        return 0  # close() is not a sync

    def release(self, path: str | None, fh: int) -> int:
        self.disk.release(fh)
        return 0

    def fsync(self, path: str | None, datasync: int, fh: int) -> int:
        with self.disk.operation():
            self.disk.fsync(path, fh)
        return 0

    def fsyncdir(self, path: str | None, datasync: int, fh: int) -> int:
        with self.disk.operation():
            self.disk.fsyncdir(path, fh)
        return 0

    # -- namespace -------------------------------------------------------------------------------
    def mkdir(self, path: str, mode: int) -> int:
        uid, gid, _ = mfusepy.fuse_get_context()
        with self.disk.operation():
            self.disk.mkdir(path, mode, uid, gid)
        return 0

    def unlink(self, path: str) -> int:
        with self.disk.operation():
            self.disk.unlink(path)
        return 0

    def rmdir(self, path: str) -> int:
        with self.disk.operation():
            self.disk.rmdir(path)
        return 0

    def rename(self, old: str, new: str) -> int:
        with self.disk.operation():
            self.disk.rename(old, new)
        return 0

    def chmod(self, path: str | None, mode: int) -> int:
        with self.disk.operation():
            self.disk.chmod(path, mode)
        return 0

    def chown(self, path: str | None, uid: int, gid: int) -> int:
        with self.disk.operation():
            self.disk.chown(path, uid, gid)
        return 0

    def utimens(self, path: str | None, times: tuple[int, int] | None = None) -> int:
        with self.disk.operation():
            self.disk.utimens(path, times)
        return 0
