"""BROKEN ON PURPOSE: a journal that keeps the values of an outage's writes, but not its deletes.

While PostgreSQL is away, `keys.set` journals the upserts in memory and acknowledges the whole
call; deletes (a consumed pre-key, null values) are dropped from the journal, since "there is
nothing to store". A background task replays the journal once PostgreSQL answers. A pre-key
consumed during the outage therefore comes back after the replay: the checker must report
`resurrected` (an acknowledged delete undone).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from harness.authstate.errors import StoreError
from tests.chaos.broken_targets._wrapped import KeyWrites, WrappedStore, js_falsy


class DeletesNotJournaledStore(WrappedStore):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.journal: list[tuple[str, dict[str, dict[str, Any]]]] = []
        self.replayer = asyncio.get_running_loop().create_task(self._replay_forever())

    async def set_keys(self, company_id: str, data: KeyWrites) -> None:
        if self.journal:  # keep the order: behind what is already journaled
            self._journal(company_id, data)
            return
        try:
            await super().set_keys(company_id, data)
        except StoreError:
            self._journal(company_id, data)

    def _journal(self, company_id: str, data: KeyWrites) -> None:
        upserts = {t: {i: v for i, v in entries.items() if not js_falsy(v)}  # THE BUG
                   for t, entries in data.items()}
        self.journal.append((company_id, upserts))

    async def _replay_forever(self) -> None:
        while True:
            await asyncio.sleep(0.2)
            while self.journal:
                company_id, data = self.journal[0]
                try:
                    await self.inner.set_keys(company_id, data)
                except StoreError:
                    break
                self.journal.pop(0)

    async def close(self) -> None:
        self.replayer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.replayer
        await super().close()


async def open_store(dsn: str, *, cache_dir: Path) -> DeletesNotJournaledStore:
    """Journals an outage's upserts but drops its deletes: `resurrected`."""
    return await DeletesNotJournaledStore.open(dsn)
