"""Helpers for the resilient store's tests: look at PostgreSQL directly, never through a store."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg


async def fetch_keys(dsn: str, company: str) -> dict[tuple[str, str], str]:
    """What PostgreSQL holds for `company`, read directly (never through a store)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT key_type, key_id, value::text FROM whatsapp_keys "
                                "WHERE company_id = $1", company)
    finally:
        await conn.close()
    return {(r[0], r[1]): r[2] for r in rows}


async def fetch_creds(dsn: str, company: str) -> str | None:
    conn = await asyncpg.connect(dsn)
    try:
        text: str | None = await conn.fetchval(
            "SELECT creds::text FROM whatsapp_auth WHERE company_id = $1", company)
        return text
    finally:
        await conn.close()


async def wait_for_mode(store: object, mode: str, within_s: float = 30.0) -> None:
    """Poll `store.status()["mode"]` until it is `mode` (a probe runs every <= 0.5 s)."""
    async with asyncio.timeout(within_s):
        while store.status()["mode"] != mode:  # type: ignore[attr-defined]  # noqa: ASYNC110
            await asyncio.sleep(0.01)


class Gate:
    """Holds an async function at its start until released: a test decides when a replay batch
    or a database read proceeds (timing control, the database and network stay real)."""

    def __init__(self, real: Callable[..., Awaitable[Any]], *, hold_after: bool = False) -> None:
        self.real = real
        self.hold_after = hold_after  # hold after the real call returned, not before
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.hold_after:
            result = await self.real(*args, **kwargs)
            self.entered.set()
            await self.release.wait()
            return result
        self.entered.set()
        await self.release.wait()
        return await self.real(*args, **kwargs)
