"""BROKEN ON PURPOSE: `load()` answers fresh creds when reading them fails.

The community-store pattern `readCreds() || initAuthCreds()`: a database error looks like a
company that was never paired, so a paired account gets a brand-new identity (Baileys starts
pairing again and saves it: a forced logout). Everything else is the reference store. The
chaos checker must report `creds-reset`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.authstate import AuthState, PostgresAuthStore
from harness.authstate.creds import init_auth_creds
from harness.authstate.errors import StoreError


class FreshCredsOnErrorStore:
    def __init__(self, inner: PostgresAuthStore) -> None:
        self.inner = inner

    async def load(self, company_id: str) -> Any:
        try:
            return await self.inner.load(company_id)
        except StoreError:  # THE BUG: an error is taken for "no creds yet"
            return AuthState(self.inner, company_id, init_auth_creds())

    async def close(self) -> None:
        await self.inner.close()


async def open_store(dsn: str, *, cache_dir: Path) -> FreshCredsOnErrorStore:
    """Returns fresh creds when loading them fails: caught as `creds-reset`."""
    return FreshCredsOnErrorStore(await PostgresAuthStore.open(dsn))
