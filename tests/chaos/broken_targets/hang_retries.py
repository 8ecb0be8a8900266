"""BROKEN ON PURPOSE: a store that retries a failed call for 10 s before it gives up.

Every operation that fails is retried every 0.5 s for up to 10 s ("it usually comes back").
Nothing is lost or stale; but while PostgreSQL is away each call keeps its caller waiting
10 s, far past any deadline Baileys' socket can afford (its keep-alive and message timeouts).
The checker must report `hang` (a call past the harness's deadline), whatever deadline the
store believes in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from harness.authstate.errors import StoreError
from tests.chaos.broken_targets._wrapped import KeyWrites, WrappedStore

T = TypeVar("T")
RETRY_FOR_S = 10.0


async def _retrying(call: Callable[[], Awaitable[T]]) -> T:
    loop = asyncio.get_running_loop()
    give_up = loop.time() + RETRY_FOR_S
    while True:
        try:
            return await call()
        except StoreError:
            if loop.time() > give_up:  # THE BUG: 10 s is not a deadline a caller can wait
                raise
            await asyncio.sleep(0.5)


class HangRetriesStore(WrappedStore):
    def status(self) -> dict[str, Any]:
        return {"deadline_s": 30.0}  # what it believes: never used to judge it

    async def read_creds(self, company_id: str) -> dict[str, Any] | None:
        return await _retrying(lambda: super(HangRetriesStore, self).read_creds(company_id))

    async def get_keys(self, company_id: str, key_type: str,
                       ids: Iterable[str]) -> dict[str, Any]:
        ids = list(ids)
        return await _retrying(lambda: super(HangRetriesStore, self).get_keys(
            company_id, key_type, ids))

    async def set_keys(self, company_id: str, data: KeyWrites) -> None:
        await _retrying(lambda: super(HangRetriesStore, self).set_keys(company_id, data))

    async def write_creds(self, company_id: str, creds: dict[str, Any]) -> None:
        await _retrying(lambda: super(HangRetriesStore, self).write_creds(company_id, creds))


async def open_store(dsn: str, *, cache_dir: Path) -> HangRetriesStore:
    """Retries every failed call for 10 s: `hang`."""
    return await HangRetriesStore.open(dsn)
