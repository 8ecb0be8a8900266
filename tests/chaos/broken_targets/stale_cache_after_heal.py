"""BROKEN ON PURPOSE: a read cache that outlives the outage, blind to another instance's writes.

Reads go to PostgreSQL and fill a cache. When a read fails the store turns "degraded" and
answers from the cache, and (the bug) it stays degraded for a 10 s TTL after PostgreSQL is back,
answering from the cache without asking. Writes go straight to PostgreSQL and never touch that
cache: as in a deployment of several pods, where the pod that writes is not the pod that reads.
After the heal the writes land (acknowledged) while reads keep returning the values cached
before the outage: the checker must report `stale-read`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.authstate.errors import StoreError
from tests.chaos.broken_targets._wrapped import WrappedStore

STALE_FOR_S = 10.0


class StaleCacheStore(WrappedStore):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.cache: dict[tuple[str, str, str], Any] = {}
        self.degraded_until = 0.0

    async def get_keys(self, company_id: str, key_type: str,
                       ids: Iterable[str]) -> dict[str, Any]:
        ids = list(ids)
        if time.monotonic() < self.degraded_until:  # THE BUG: no look at PostgreSQL
            return self._cached(company_id, key_type, ids)
        try:
            found = await super().get_keys(company_id, key_type, ids)
        except StoreError:
            self.degraded_until = time.monotonic() + STALE_FOR_S
            return self._cached(company_id, key_type, ids)
        for key_id, value in found.items():
            self.cache[(company_id, key_type, key_id)] = value
        return found

    def _cached(self, company_id: str, key_type: str, ids: list[str]) -> dict[str, Any]:
        return {i: self.cache[(company_id, key_type, i)] for i in ids
                if (company_id, key_type, i) in self.cache}


async def open_store(dsn: str, *, cache_dir: Path) -> StaleCacheStore:
    """Serves a pre-outage cache for 10 s after the heal while writes land: `stale-read`."""
    return await StaleCacheStore.open(dsn)
