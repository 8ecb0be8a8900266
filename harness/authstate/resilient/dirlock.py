"""The cache directory: created private (0700) and held with an exclusive lock.

The lock is `flock` on `<cache_dir>/lock`: the kernel drops it when the holder dies (kill -9
included), so a crashed store never leaves a stale lock behind, and a second store (another
process, or another instance in this one: flock locks belong to the open file) is refused at
once instead of sharing the journal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from harness.authstate.resilient.errors import JournalLocked

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it 0700: it holds key material. Each directory
    created is an entry in its parent, made durable by an fsync of that parent (else a power
    loss can take the new directory, and the journal written into it, away)."""
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:  # made meanwhile by someone else: theirs to sync
            continue
        fsync_dir(directory.parent)
    if (path.stat().st_mode & 0o777) != DIR_MODE:
        os.chmod(path, DIR_MODE)


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in `path` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirectoryLock:
    """An exclusive hold on a cache directory for the lifetime of one store."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, cache_dir: Path) -> DirectoryLock:
        make_private_dir(cache_dir)
        path = cache_dir / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise JournalLocked(
                f"cache directory {cache_dir} is in use by another auth-state store{holder}",
                hint="give each store instance its own cache_dir (two stores sharing a journal "
                "would replay each other's writes), or close the other one first") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(path, fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(os.pread(fd, 32, 0).decode().strip())
        return f" (pid {pid})" if pid != os.getpid() else " (another instance in this process)"
    return ""
