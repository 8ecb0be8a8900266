"""BROKEN ON PURPOSE: the resilient store, but its journal ignores write errors (ENOSPC, EIO).

A journal write that the disk refused is acknowledged anyway. While PostgreSQL is away those
writes exist only in the process's memory; after a restart (here: a power loss and a new
process on the same cache_dir) they are gone, or the journal is unreadable because a record cut
short by ENOSPC has acknowledged records behind it: either way `lost`.

    python -m harness run --suite chaos --scenario disk-full \\
        --target tests/chaos/broken_targets/journal_ignores_enospc.py:open_store   # exits 1
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.chaos.broken_targets._resilient_journal import open_with_broken_journal


def _write_ignoring_errors(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
        os.fdatasync(fd)
    except OSError:
        pass  # THE BUG: "the disk will catch up": the appenders are acknowledged anyway


def break_journal(journal: Any) -> None:
    """Swallow the append's write and fdatasync errors, on this journal instance only."""
    ops = getattr(journal, "ops", None)
    if ops is not None:  # the journal's OS calls go through a FileOps object
        base = type(ops)

        class IgnoreErrors(base):  # type: ignore[misc, valid-type]
            def write_all(self, fd: int, data: bytes) -> None:
                try:
                    base.write_all(self, fd, data)
                except OSError:
                    pass  # THE BUG

            def fdatasync(self, fd: int) -> None:
                try:
                    base.fdatasync(self, fd)
                except OSError:
                    pass  # THE BUG

        journal.ops = IgnoreErrors()
    elif callable(getattr(journal, "_write_sync", None)):  # write + fdatasync in one call
        journal._write_sync = _write_ignoring_errors
    else:
        raise RuntimeError("the journal's append I/O moved: update this broken target to "
                           "swallow its write errors in the new place")


async def open_store(dsn: str, *, cache_dir: Path) -> Any:
    return await open_with_broken_journal(dsn, cache_dir, break_journal)
