"""The resilient store: the reference store plus a write-ahead journal, caches and a breaker.

Modules, bottom up: `records` (journal record format), `journal` (the file, group commit,
markers, compaction), `dirlock` (exclusive private cache_dir), `overlay` (pending writes laid
over reads), `cache` (byte-bounded LRU, read guard), `creds_file` (per-company creds file
cache), `breaker` (states, backoff), `clock` (server clock offset), `replay` (the SQL that
drains the journal), `fence` (ends the sessions of writes with an unknown outcome before
anything writes again), `store` (ResilientAuthStore, which composes them).
"""

from harness.authstate.resilient.errors import (
    JournalCorrupt,
    JournalError,
    JournalLocked,
    JournalWriteFailed,
)
from harness.authstate.resilient.store import ResilientAuthStore

__all__ = [
    "JournalCorrupt",
    "JournalError",
    "JournalLocked",
    "JournalWriteFailed",
    "ResilientAuthStore",
]
