"""BROKEN ON PURPOSE: a write that failed mid-outage is retried later, unfenced.

When `keys.set` fails, the store says so (the caller records it as indeterminate: it may still
land) and hands the write to a background retrier, which keeps trying until PostgreSQL answers
and then, after a lag, applies it, whatever was written to those keys since. Baileys' next
messages write newer sessions meanwhile; the old one then overwrites them: an old session over
a newer one. The observer sees the newer value durable and then the old one again: the checker
must report `late-write`.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from harness.authstate.errors import StoreError, StoreUnavailable
from tests.chaos.broken_targets._wrapped import KeyWrites, WrappedStore

LAG_S = 1.0  # after PostgreSQL answers again


class NoFenceStore(WrappedStore):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.retries: list[tuple[str, KeyWrites]] = []
        self.retrier = asyncio.get_running_loop().create_task(self._retry_forever())

    async def set_keys(self, company_id: str, data: KeyWrites) -> None:
        try:
            await super().set_keys(company_id, data)
        except StoreError as exc:
            self.retries.append((company_id, data))  # THE BUG: no fence, no version check
            raise StoreUnavailable(f"write queued for retry: {exc}", operation="keys.set",
                                   company_id=company_id, outcome="unknown") from None

    async def _retry_forever(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            if not self.retries:
                continue
            try:
                await self.inner.probe()
            except StoreError:
                continue
            await asyncio.sleep(LAG_S)
            while self.retries:
                company_id, data = self.retries.pop(0)
                with contextlib.suppress(StoreError):
                    await self.inner.set_keys(company_id, data)

    async def close(self) -> None:
        self.retrier.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.retrier
        await super().close()


async def open_store(dsn: str, *, cache_dir: Path) -> NoFenceStore:
    """Retries a failed write after the heal without a fence: `late-write`."""
    return await NoFenceStore.open(dsn)
