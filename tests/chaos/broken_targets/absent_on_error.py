"""BROKEN ON PURPOSE: `keys.get` answers "absent" when reading fails.

A read error returns `{}`, which Baileys takes for "no such key": no session (it renegotiates),
no pre-key, no sender key ("No SenderKeyRecord found for decryption"). Everything else is the
reference store. The chaos checker must report `stale-read` (absent, though a value had been
acknowledged before the read began).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.authstate import PostgresAuthStore
from harness.authstate.errors import StoreError


class AbsentOnErrorStore:
    def __init__(self, inner: PostgresAuthStore) -> None:
        self.inner = inner

    async def load(self, company_id: str) -> Any:
        state = await self.inner.load(company_id)
        state.keys = AbsentOnErrorKeys(self.inner, company_id)
        return state

    async def close(self) -> None:
        await self.inner.close()


class AbsentOnErrorKeys:
    def __init__(self, inner: PostgresAuthStore, company_id: str) -> None:
        self.inner, self.company_id = inner, company_id

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        try:
            return await self.inner.get_keys(self.company_id, key_type, ids)
        except StoreError:
            return {}  # THE BUG: an error is taken for "absent"

    async def set(self, data: Any) -> None:
        await self.inner.set_keys(self.company_id, data)


async def open_store(dsn: str, *, cache_dir: Path) -> AbsentOnErrorStore:
    """Answers absent when a key read fails: caught as `stale-read`."""
    return AbsentOnErrorStore(await PostgresAuthStore.open(dsn))
