"""The faults in force and the counters the report shows.

Faults stay in force until `clear`:
- `enospc_budget`: bytes that may still be written; a write larger than what is left is short
  (what fits is written and its length returned), every write after it and every create or
  mkdir fails with ENOSPC. 0 = full from now. `enospc_refusals`: after this many ENOSPC
  errors space comes back by itself (another process freed some); None = until cleared.
  `enospc_delay_s`: each refusal takes this long (ext4 commits its journal and retries the
  allocation before it gives up), so a writer's next request can queue up meanwhile.
- `eio_writes` / `eio_fsyncs`: how many of the next writes / fsyncs fail with EIO (`EVERY`:
  all of them). A failed file fsync drops that file's unsynced writes without persisting them
  (fsyncgate: the kernel marks the pages clean, a retried fsync "succeeds", the data is gone at
  the next power loss) while reads still see them; a failed directory fsync persists nothing.
- `fsync_delay_s`: every fsync and directory fsync waits this long before it syncs.
- `hold`: fsyncs wait until released (the harness's way to cut the power while a sync is in
  flight: the bytes it would have made durable are certainly unsynced at that moment).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

EVERY = -1
HOLD_MAX_S = 120.0  # a held fsync never waits longer than this (a harness that died)


@dataclass
class Faults:
    enospc_budget: int | None = None
    enospc_refusals: int | None = None
    enospc_delay_s: float = 0.0
    eio_writes: int = 0
    eio_fsyncs: int = 0
    fsync_delay_s: float = 0.0

    def take_eio(self, which: str) -> bool:
        """Whether this write / fsync fails (and count it against a limited fault)."""
        left = getattr(self, which)
        if left == 0:
            return False
        if left > 0:
            setattr(self, which, left - 1)
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"enospc_budget": self.enospc_budget, "enospc_refusals": self.enospc_refusals,
                "enospc_delay_s": self.enospc_delay_s,
                "eio_writes": "every" if self.eio_writes == EVERY else self.eio_writes,
                "eio_fsyncs": "every" if self.eio_fsyncs == EVERY else self.eio_fsyncs,
                "fsync_delay_s": self.fsync_delay_s}


@dataclass
class Counters:
    writes: int = 0
    bytes_written: int = 0
    fsyncs: int = 0
    dir_fsyncs: int = 0
    fsyncs_delayed: int = 0
    fsyncs_held: int = 0
    enospc_errors: int = 0
    short_writes: int = 0
    eio_write_errors: int = 0
    eio_fsync_errors: int = 0
    bytes_dropped_by_failed_fsync: int = 0
    power_losses: int = 0
    bytes_dropped: int = 0  # unsynced bytes a power loss threw away
    writes_dropped: int = 0
    torn_bytes_kept: int = 0  # unsynced bytes a torn power loss persisted anyway
    files_affected: int = 0
    names_undone: int = 0
    affected_paths: list[str] = field(default_factory=list)
    failed_paths: list[str] = field(default_factory=list)  # where ENOSPC / EIO / short hit

    def failed_at(self, what: str, path: str | None) -> None:
        if len(self.failed_paths) < 50:
            self.failed_paths.append(f"{what} {path or '(open file)'}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class FsyncGate:
    """Delays and holds of fsyncs, waited for outside the filesystem's lock."""

    def __init__(self) -> None:
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self.waiting = 0  # fsyncs held right now

    @property
    def held(self) -> bool:
        return not self._open.is_set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait(self, delay_s: float) -> tuple[bool, bool]:
        """(was delayed, was held)."""
        if delay_s > 0:
            time.sleep(delay_s)
        if self._open.is_set():
            return delay_s > 0, False
        with self._lock:
            self.waiting += 1
        try:
            self._open.wait(HOLD_MAX_S)
        finally:
            with self._lock:
                self.waiting -= 1
        return delay_s > 0, True
