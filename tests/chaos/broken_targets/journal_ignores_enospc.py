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

from harness.authstate.resilient.journal import Journal
from harness.targets import resolve_target

_PATCHED = "_write_sync"  # Journal's append I/O: write(2) the group, then fdatasync(2)


def _write_ignoring_errors(fd: int, data: bytes) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
        os.fdatasync(fd)
    except OSError:
        pass  # THE BUG: "the disk will catch up": the appenders are acknowledged anyway


async def open_store(dsn: str, *, cache_dir: Path) -> Any:
    if not callable(getattr(Journal, _PATCHED, None)):
        raise RuntimeError(f"Journal.{_PATCHED} is gone: update this broken target to swallow "
                           "the journal's write errors in its new place")
    store = await resolve_target("resilient").open(dsn, cache_dir=cache_dir)
    setattr(store._journal, _PATCHED, _write_ignoring_errors)  # this instance only
    return store
