"""Baileys' per-company `{state: {creds, keys}, saveCreds}` over any of our stores.

The plain and the resilient store differ in how they read and write, not in what Baileys sees:
both hand out these objects, bound to the store's company-level operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

KeyWrites = Mapping[str, Mapping[str, Any]]


class CompanyOperations(Protocol):
    """What a store offers per company (PostgresAuthStore, ResilientAuthStore)."""

    async def get_keys(self, company_id: str, key_type: str,
                       ids: Iterable[str]) -> dict[str, Any]: ...
    async def set_keys(self, company_id: str, data: KeyWrites) -> None: ...
    async def clear_keys(self, company_id: str) -> int: ...
    async def write_creds(self, company_id: str, creds: Mapping[str, Any]) -> None: ...


class SignalKeyStore:
    """`state.keys` of one company: Baileys' SignalKeyStore surface."""

    def __init__(self, store: CompanyOperations, company_id: str) -> None:
        self._store = store
        self.company_id = company_id

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        return await self._store.get_keys(self.company_id, key_type, ids)

    async def set(self, data: KeyWrites) -> None:
        await self._store.set_keys(self.company_id, data)

    async def clear(self) -> None:
        await self._store.clear_keys(self.company_id)


class AuthState:
    """Baileys' `{state: {creds, keys}, saveCreds}` for one company."""

    def __init__(self, store: CompanyOperations, company_id: str,
                 creds: dict[str, Any]) -> None:
        self.company_id = company_id
        self.creds = creds
        self.keys = SignalKeyStore(store, company_id)
        self._store = store

    async def save_creds(self) -> None:
        await self._store.write_creds(self.company_id, self.creds)
