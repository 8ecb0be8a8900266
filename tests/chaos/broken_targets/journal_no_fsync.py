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

from tests.chaos.broken_targets._resilient_journal import open_with_broken_journal


def _write_without_sync(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    # THE BUG: no os.fdatasync(fd) before the appenders are acknowledged


def break_journal(journal: Any) -> None:
    """Skip the fdatasync of appends, on this journal instance only."""
    ops = getattr(journal, "ops", None)
    if ops is not None:  # the journal's OS calls go through a FileOps object

        class NoSync(type(ops)):  # type: ignore[misc]
            def fdatasync(self, fd: int) -> None:
                pass  # THE BUG

        journal.ops = NoSync()
    elif callable(getattr(journal, "_write_sync", None)):  # write + fdatasync in one call
        journal._write_sync = _write_without_sync
    else:
        raise RuntimeError("the journal's append I/O moved: update this broken target to skip "
                           "its fdatasync in the new place")


async def open_store(dsn: str, *, cache_dir: Path) -> Any:
    return await open_with_broken_journal(dsn, cache_dir, break_journal)
