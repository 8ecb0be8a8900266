"""BROKEN ON PURPOSE: a store that cannot hold a Baileys session.

Its value column was sized for pre-keys (as if `VARCHAR(1024)`): anything larger is refused.
Sessions are 1-8 KB and app-state versions larger, so the store fails its set-up on a perfectly
healthy database, before any fault. That is a verdict about the store (`setup-failed`, exit 1),
never a failure of the harness.
"""

from __future__ import annotations

from pathlib import Path

from harness.authstate import codec
from harness.authstate.errors import StoreRejected
from tests.chaos.broken_targets._wrapped import KeyWrites, WrappedStore

MAX_VALUE_BYTES = 1024


class ValueColumnTooSmallStore(WrappedStore):
    async def set_keys(self, company_id: str, data: KeyWrites) -> None:
        for key_type, entries in data.items():
            for key_id, value in entries.items():
                if value is not None and len(codec.dumps(value)) > MAX_VALUE_BYTES:
                    raise StoreRejected(  # THE BUG: the column is too small
                        f"value too long for type character varying({MAX_VALUE_BYTES}) "
                        f"({key_type} {key_id})", operation="keys.set", company_id=company_id)
        await super().set_keys(company_id, data)


async def open_store(dsn: str, *, cache_dir: Path) -> ValueColumnTooSmallStore:
    """Refuses values over 1 KB: fails set-up on a healthy database, `setup-failed`."""
    return await ValueColumnTooSmallStore.open(dsn)
