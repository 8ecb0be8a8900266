"""BROKEN ON PURPOSE: the resilient store with its journal in a directory of its own process.

Everything the resilient store does, except that it ignores the cache_dir it is given and
journals into a fresh temporary directory per process (a container whose cache_dir is not a
volume, or a default of `mkdtemp()`). One process loses nothing; but when the process is
restarted while PostgreSQL is away, the writes it acknowledged into its journal stay behind
in a directory its successor never opens. The `restart-degraded` scenario must report `lost`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from harness.authstate import ResilientAuthStore


async def open_store(dsn: str, *, cache_dir: Path) -> ResilientAuthStore:
    """The resilient store on a per-process temporary cache_dir: `lost` after a restart."""
    return await ResilientAuthStore.open(dsn, cache_dir=Path(tempfile.mkdtemp(prefix="cache-")))
