"""BROKEN ON PURPOSE: the resilient store, but its journal never fdatasyncs an append.

Every journaled write is acknowledged once it is in the page cache. A process kill does not
show it (the kernel still writes the page cache out: `client-crash` passes), a power loss does:
the records were never on the disk, so the new process has nothing to replay and the writes
acknowledged during the outage are `lost`.

    python -m harness run --suite chaos --scenario power-loss \\
        --target tests/chaos/broken_targets/journal_no_fsync.py:open_store    # exits 1: lost
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.authstate.resilient.journal import Journal
from harness.targets import resolve_target

_PATCHED = "_write_sync"  # Journal's append I/O: write(2) the group, then fdatasync(2)


def _write_without_sync(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    # THE BUG: no os.fdatasync(fd) before the appenders are acknowledged


async def open_store(dsn: str, *, cache_dir: Path) -> Any:
    if not callable(getattr(Journal, _PATCHED, None)):
        raise RuntimeError(f"Journal.{_PATCHED} is gone: update this broken target to skip "
                           "the journal's fdatasync in its new place")
    store = await resolve_target("resilient").open(dsn, cache_dir=cache_dir)
    setattr(store._journal, _PATCHED, _write_without_sync)  # this instance only
    return store
