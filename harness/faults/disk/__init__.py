"""Disk faults: a FUSE filesystem with its own page cache that forgets on command.

A target's cache_dir is mounted on it; the chaos scenarios of layer `disk` cut the power
(unsynced data and namespace changes are lost, or a write is torn), fill the disk (ENOSPC, also
mid-write), fail writes or fsyncs (EIO, fsyncgate semantics) and slow fsyncs down.

- `model.LazyDisk`: the filesystem's state and semantics (pure Python, tested without a mount);
- `fusefs.LazyOperations`: its FUSE operations (mfusepy over libfuse3);
- `server`: the filesystem's own process; `control`: its command socket and client;
- `mount.FaultyDisk`: the harness's handle (start, health check, faults, stop, watchdog);
  `mount.unavailable()` says why FUSE cannot be used here and how to enable it.
See docs/disk-faults.md.
"""

from __future__ import annotations

from harness.faults.disk.control import DiskControl, DiskControlError
from harness.faults.disk.mount import DiskUnavailable, FaultyDisk, unavailable

__all__ = ["DiskControl", "DiskControlError", "DiskUnavailable", "FaultyDisk", "unavailable"]
