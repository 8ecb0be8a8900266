"""A FIFO lock per company that exists only while someone holds or awaits it.

A store serves many companies over its life; a plain `defaultdict(asyncio.Lock)` kept one lock
per company ever seen (a long-lived service grows without bound). Here an entry is counted by
its holders and waiters and dropped when the last one leaves, so the map holds only companies
with a write in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from time import monotonic


class CompanyLocks:
    """`async with locks.hold(company_id):` one writer of a company at a time, in call order."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[str, list] = {}  # company -> [asyncio.Lock, holders + waiters]

    def __len__(self) -> int:
        """Companies with a holder or a waiter now."""
        return len(self._entries)

    @contextlib.asynccontextmanager
    async def hold(self, company_id: str, until: float | None = None) -> AsyncIterator[None]:
        """Hold the company's lock; with `until` (a `time.monotonic()` instant) give up waiting
        then with TimeoutError (raised before anything else happened)."""
        entry = self._entries.get(company_id)
        if entry is None:
            entry = self._entries[company_id] = [asyncio.Lock(), 0]
        entry[1] += 1
        lock: asyncio.Lock = entry[0]
        try:
            if until is None:
                await lock.acquire()
            else:
                left = until - monotonic()
                if left <= 0:
                    raise TimeoutError
                async with asyncio.timeout(left):
                    await lock.acquire()
            try:
                yield
            finally:
                lock.release()
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._entries[company_id]
