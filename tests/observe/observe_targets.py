"""Python targets for the durable reader's tests (`tests/observe/observe_targets.py:NAME`).

- `with_snapshot`: the reference store plus a `snapshot(company_id)` hook reading its tables;
- `writes_on_load`: the reference store, but `load` of a company without creds saves fresh
  ones (a store that writes when it only reads: the reader must refuse, and say so);
- `driver_errors`: a foreign store whose keys.set lets asyncpg's and the OS's errors through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg

from harness.authstate import PostgresAuthStore, codec
from harness.chaos.values import is_fresh


class _Wrapped:
    def __init__(self, inner: PostgresAuthStore, dsn: str) -> None:
        self.inner = inner
        self.dsn = dsn

    async def load(self, company_id: str) -> Any:
        return await self.inner.load(company_id)

    async def close(self) -> None:
        await self.inner.close()


class SnapshotStore(_Wrapped):
    async def snapshot(self, company_id: str) -> dict[str, Any]:
        conn = await asyncpg.connect(self.dsn)
        try:
            creds = await conn.fetchval(
                "SELECT creds::text FROM whatsapp_auth WHERE company_id = $1", company_id)
            rows = await conn.fetch("SELECT key_type, key_id, value::text FROM whatsapp_keys "
                                    "WHERE company_id = $1", company_id)
        finally:
            await conn.close()
        keys: dict[str, dict[str, Any]] = {}
        for key_type, key_id, text in rows:
            keys.setdefault(key_type, {})[key_id] = codec.loads(text)
        return {"creds": None if creds is None else codec.loads(creds), "keys": keys}


class WritesOnLoad(_Wrapped):
    async def load(self, company_id: str) -> Any:
        state = await self.inner.load(company_id)
        if is_fresh(state.creds):
            await state.save_creds()  # the mistake: a read that writes
        return state


class _RawKeys:
    def __init__(self, conn_dsn: str, company_id: str) -> None:
        self.dsn = conn_dsn
        self.company_id = company_id

    async def get(self, key_type: str, ids: Any) -> dict[str, Any]:
        return {}

    async def set(self, data: Any) -> None:
        if self.company_id == "reset":
            raise ConnectionResetError(104, "Connection reset by peer")
        conn = await asyncpg.connect(self.dsn)
        try:  # a NUL in a JSON string: PostgreSQL refuses the statement (22P05)
            for entries in data.values():
                for value in entries.values():
                    await conn.execute("SELECT $1::text::jsonb", codec.dumps(value))
        finally:
            await conn.close()


class _RawState:
    def __init__(self, dsn: str, company_id: str) -> None:
        self.creds: dict[str, Any] = {}
        self.keys = _RawKeys(dsn, company_id)

    async def save_creds(self) -> None:
        return None


class DriverErrors:
    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    async def load(self, company_id: str) -> _RawState:
        return _RawState(self.dsn, company_id)

    async def close(self) -> None:
        return None


async def with_snapshot(dsn: str, *, cache_dir: Path) -> SnapshotStore:
    return SnapshotStore(await PostgresAuthStore.open(dsn), dsn)


async def writes_on_load(dsn: str, *, cache_dir: Path) -> WritesOnLoad:
    return WritesOnLoad(await PostgresAuthStore.open(dsn), dsn)


async def driver_errors(dsn: str, *, cache_dir: Path) -> DriverErrors:
    return DriverErrors(dsn)
