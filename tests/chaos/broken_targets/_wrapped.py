"""The shape every broken target here shares: the reference store behind Baileys' surface,
with one method overridden to break it in one way (see each file's docstring).

`WrappedStore` answers `load(company)` with a state whose creds, `keys.get`, `keys.set` and
`save_creds` go through its `read_creds` / `get_keys` / `set_keys` / `write_creds`; a broken
target subclasses it and overrides the one it gets wrong. Absent creds load as fresh ones, as
Baileys' stores do; an error raises (the reference store never takes an error for "absent").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.authstate import PostgresAuthStore
from harness.authstate.creds import init_auth_creds

KeyWrites = Mapping[str, Mapping[str, Any]]


def js_falsy(value: Any) -> bool:
    """A keys.set value meaning delete (JavaScript falsiness)."""
    return value is None or value is False or value == 0 or value == ""


class WrappedStore:
    def __init__(self, inner: PostgresAuthStore) -> None:
        self.inner = inner

    @classmethod
    async def open(cls, dsn: str, *, cache_dir: Path | None = None) -> WrappedStore:
        return cls(await PostgresAuthStore.open(dsn))

    async def load(self, company_id: str) -> WrappedState:
        creds = await self.read_creds(company_id)
        return WrappedState(self, company_id, creds if creds is not None else init_auth_creds())

    async def read_creds(self, company_id: str) -> dict[str, Any] | None:
        return await self.inner.read_creds(company_id)

    async def write_creds(self, company_id: str, creds: dict[str, Any]) -> None:
        await self.inner.write_creds(company_id, creds)

    async def get_keys(self, company_id: str, key_type: str,
                       ids: Iterable[str]) -> dict[str, Any]:
        return await self.inner.get_keys(company_id, key_type, list(ids))

    async def set_keys(self, company_id: str, data: KeyWrites) -> None:
        await self.inner.set_keys(company_id, data)

    async def close(self) -> None:
        await self.inner.close()


class WrappedKeys:
    def __init__(self, store: WrappedStore, company_id: str) -> None:
        self.store, self.company_id = store, company_id

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        return await self.store.get_keys(self.company_id, key_type, ids)

    async def set(self, data: KeyWrites) -> None:
        await self.store.set_keys(self.company_id, data)


class WrappedState:
    def __init__(self, store: WrappedStore, company_id: str, creds: dict[str, Any]) -> None:
        self.store, self.company_id, self.creds = store, company_id, creds
        self.keys = WrappedKeys(store, company_id)

    async def save_creds(self) -> None:
        await self.store.write_creds(self.company_id, self.creds)
