"""BROKEN ON PURPOSE: `keys.set` writes key by key, each in its own transaction.

Like a store that runs `Promise.all` of single-row writes: a call with 812 pre-keys is 812
separate commits. A connection reset in the middle leaves some of them in PostgreSQL and not
the others, and even without a fault a reader can see the write half done. The observer reads
the 812 keys together every 50 ms: the checker must report `torn`.
"""

from __future__ import annotations

from pathlib import Path

from tests.chaos.broken_targets._wrapped import KeyWrites, WrappedStore


class NonAtomicWritesStore(WrappedStore):
    async def set_keys(self, company_id: str, data: KeyWrites) -> None:
        for key_type, entries in data.items():  # THE BUG: one commit per key
            for key_id, value in entries.items():
                await self.inner.set_keys(company_id, {key_type: {key_id: value}})


async def open_store(dsn: str, *, cache_dir: Path) -> NonAtomicWritesStore:
    """Commits a multi-key write one key at a time: `torn`."""
    return await NonAtomicWritesStore.open(dsn)
