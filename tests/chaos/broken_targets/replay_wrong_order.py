"""BROKEN ON PURPOSE: a journal replayed newest first.

While PostgreSQL is away `keys.set` journals the whole call in memory and acknowledges it; a
background task replays the journal once PostgreSQL answers, but pops it as a stack (the
newest entry first). A key written twice during the outage ends with its OLDER value: the
checker must report `lost` (an acknowledged write missing from the final state).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from harness.authstate.errors import StoreError
from tests.chaos.broken_targets._wrapped import KeyWrites, WrappedStore


class ReplayWrongOrderStore(WrappedStore):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.journal: list[tuple[str, KeyWrites]] = []
        self.replayer = asyncio.get_running_loop().create_task(self._replay_forever())

    async def set_keys(self, company_id: str, data: KeyWrites) -> None:
        if self.journal:
            self.journal.append((company_id, data))
            return
        try:
            await super().set_keys(company_id, data)
        except StoreError:
            self.journal.append((company_id, data))

    async def _replay_forever(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            while self.journal:
                company_id, data = self.journal[-1]  # THE BUG: newest first
                try:
                    await self.inner.set_keys(company_id, data)
                except StoreError:
                    break
                self.journal.pop()

    async def close(self) -> None:
        self.replayer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.replayer
        await super().close()


async def open_store(dsn: str, *, cache_dir: Path) -> ReplayWrongOrderStore:
    """Replays its outage journal newest first: `lost`."""
    return await ReplayWrongOrderStore.open(dsn)
