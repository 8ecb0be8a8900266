"""BROKEN ON PURPOSE: a group commit that runs in the task of whichever caller came first.

`keys.set` adds its rows to a shared batch. The first caller of a batch (the leader) waits a
moment for others to join, writes the whole batch to PostgreSQL in one transaction and then
wakes the followers, who return as acknowledged. The bug is in the leader's `finally`: when
the leader is *cancelled* (its application gave up on it: asyncio.timeout, a task group
shutting down), the batch is never written, yet the followers are woken as if it had been.
Every follower of a cancelled leader was acknowledged and is missing from PostgreSQL: the
`cancel` scenario must report `lost`. Without cancellations no acknowledged write is
dropped: a failed batch write is raised to every member.

    python -m harness run --suite chaos --scenario cancel \\
        --target tests/chaos/broken_targets/cancel_drops_batch.py:open_store  # exits 1, `lost`
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.authstate import PostgresAuthStore

GATHER_S = 0.02  # the leader waits this long for followers to join its batch


class _Batch:
    def __init__(self) -> None:
        self.writes: list[tuple[str, Mapping[str, Mapping[str, Any]]]] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class CancelDropsBatchStore:
    def __init__(self, inner: PostgresAuthStore) -> None:
        self.inner = inner
        self._open: _Batch | None = None

    async def load(self, company_id: str) -> BatchState:
        state = await self.inner.load(company_id)
        return BatchState(self, company_id, state)

    async def write(self, company_id: str, data: Mapping[str, Mapping[str, Any]]) -> None:
        batch = self._open
        if batch is not None:  # a follower: the leader writes for us
            batch.writes.append((company_id, data))
            await asyncio.shield(batch.done)
            return
        batch = self._open = _Batch()
        batch.writes.append((company_id, data))
        error: BaseException | None = None
        try:
            await asyncio.sleep(GATHER_S)
            self._open = None
            for company, writes in batch.writes:  # one after the other, as one "transaction"
                await self.inner.set_keys(company, writes)
        except asyncio.CancelledError:
            raise  # THE BUG: the batch is dropped ...
        except BaseException as exc:
            error = exc
            raise
        finally:
            if self._open is batch:
                self._open = None
            if not batch.done.done():
                if error is None:
                    batch.done.set_result(None)  # ... and the followers told it was written
                else:
                    batch.done.set_exception(error)

    async def close(self) -> None:
        await self.inner.close()


class BatchKeys:
    def __init__(self, store: CancelDropsBatchStore, company_id: str) -> None:
        self.store, self.company_id = store, company_id

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        return await self.store.inner.get_keys(self.company_id, key_type, ids)

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        await self.store.write(self.company_id, data)


class BatchState:
    def __init__(self, store: CancelDropsBatchStore, company_id: str, inner_state: Any) -> None:
        self._inner_state = inner_state
        self.creds = inner_state.creds
        self.keys = BatchKeys(store, company_id)

    async def save_creds(self) -> None:
        self._inner_state.creds = self.creds
        await self._inner_state.save_creds()


async def open_store(dsn: str, *, cache_dir: Path) -> CancelDropsBatchStore:
    """Drops a batch when its leader is cancelled, acknowledging its followers: `lost`."""
    return CancelDropsBatchStore(await PostgresAuthStore.open(dsn))
