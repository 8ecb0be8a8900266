"""Every operating-system call the journal makes on its files, behind one small object.

The journal's durability rests on what these calls do when the disk misbehaves: a short write
(ENOSPC half-way through a record), EIO from `fdatasync`, a sync that takes seconds. Tests of
the journal subclass `FileOps` to make one call fail or block at a chosen moment and check what
the journal does next; they are unit tests of the journal's logic. What a real disk does under
power loss or a full filesystem is shown end to end by the disk-fault scenarios, not here.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.authstate.resilient.dirlock import FILE_MODE, fsync_dir


class FileOps:
    """Plain `os` calls. Blocking: the journal runs them on its own I/O thread."""

    def open_append(self, path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_APPEND)

    def open_new(self, path: Path) -> int:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)

    def write(self, fd: int, data: memoryview) -> int:
        return os.write(fd, data)

    def fdatasync(self, fd: int) -> None:
        os.fdatasync(fd)

    def fsync(self, fd: int) -> None:
        os.fsync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def close(self, fd: int) -> None:
        os.close(fd)

    def replace(self, src: Path, dst: Path) -> None:
        os.replace(src, dst)

    def unlink(self, path: Path) -> None:
        os.unlink(path)

    def fsync_dir(self, path: Path) -> None:
        fsync_dir(path)

    def write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self.write(fd, view):]


DEFAULT_OPS = FileOps()
