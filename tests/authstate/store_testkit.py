"""Helpers shared by the store's own tests (real PostgreSQL, real faults)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from harness.authstate import StoreError


async def terminate_when_blocked(db: asyncpg.Connection,
                                 call: Callable[[], Awaitable[Any]]) -> StoreError:
    """Park the call behind a table lock, then terminate its backend (57P01) mid-statement."""
    async with db.transaction():
        await db.execute("LOCK TABLE whatsapp_keys IN ACCESS EXCLUSIVE MODE")
        task = asyncio.create_task(call())
        pid = None
        while pid is None and not task.done():
            await asyncio.sleep(0.01)
            pid = await db.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'authstate-harness' "
                "AND wait_event_type = 'Lock'")
        assert pid is not None, "the call never blocked on the lock"
        assert await db.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        with pytest.raises(StoreError) as err:
            await task
    return err.value
