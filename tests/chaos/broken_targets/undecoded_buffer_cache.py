"""BROKEN ON PURPOSE: a cache of JSON text that hands bytes back un-decoded.

Every value read or written is also kept in a cache as its JSON text (BufferJSON form, as a
file cache or Redis would hold it). When PostgreSQL is away reads answer from that cache, but
the text is parsed with a plain JSON parser, without BufferJSON's reviver: every key's bytes
come back as `{"type": "Buffer", "data": "..."}` objects. Baileys then feeds those objects to
libsignal: Bad MAC. The checker must report `unexpected`, naming the wrong form.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.authstate import codec
from harness.authstate.errors import StoreError
from tests.chaos.broken_targets._wrapped import KeyWrites, WrappedStore, js_falsy


class UndecodedBufferCacheStore(WrappedStore):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.texts: dict[tuple[str, str, str], str] = {}

    def _keep(self, company_id: str, key_type: str, values: dict[str, Any]) -> None:
        for key_id, value in values.items():
            if js_falsy(value):
                self.texts.pop((company_id, key_type, key_id), None)
            else:
                self.texts[(company_id, key_type, key_id)] = codec.dumps(value)

    async def get_keys(self, company_id: str, key_type: str,
                       ids: Iterable[str]) -> dict[str, Any]:
        ids = list(ids)
        try:
            found = await super().get_keys(company_id, key_type, ids)
        except StoreError:
            return {i: json.loads(self.texts[(company_id, key_type, i)])  # THE BUG
                    for i in ids if (company_id, key_type, i) in self.texts}
        self._keep(company_id, key_type, found)
        return found

    async def set_keys(self, company_id: str, data: KeyWrites) -> None:
        await super().set_keys(company_id, data)
        for key_type, entries in data.items():
            self._keep(company_id, key_type, dict(entries))


async def open_store(dsn: str, *, cache_dir: Path) -> UndecodedBufferCacheStore:
    """Serves cached JSON text without reviving Buffers during an outage: `unexpected`."""
    return await UndecodedBufferCacheStore.open(dsn)
