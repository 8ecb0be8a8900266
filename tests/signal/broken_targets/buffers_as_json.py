"""BROKEN ON PURPOSE: its key cache hands Buffers back as `{type, data}` objects.

The reference store with a read cache of key values, kept as JSON text the way a naive cache
does it (`JSON.stringify(value)` of a Node Buffer gives `{"type":"Buffer","data":[...]}`) and
served parsed without Baileys' BufferJSON reviver: every byte string comes back from the cache
as that object. Node's `Buffer.from()` still copes with most of them (pre-keys, sender keys),
but Baileys compares the stored identity key of a contact byte by byte: an object is never
equal, so each `pkmsg` looks like a changed identity, Baileys deletes the session it had and
libsignal builds it again from the pre-key, which the first `pkmsg` already consumed:
"Invalid PreKey ID". The checker must also see the values no write produced (`unexpected`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.authstate import PostgresAuthStore


def _as_node_json(value: Any) -> Any:
    """What JSON.parse(JSON.stringify(value)) gives in Node: bytes become {type, data: [..]}."""
    def default(obj: Any) -> Any:
        if isinstance(obj, bytes | bytearray | memoryview):
            return {"type": "Buffer", "data": list(bytes(obj))}
        raise TypeError(type(obj).__name__)
    return json.loads(json.dumps(value, default=default))


class BuffersAsJsonStore:
    def __init__(self, inner: PostgresAuthStore) -> None:
        self.inner = inner
        self.cache: dict[tuple[str, str, str], Any] = {}

    async def load(self, company_id: str) -> Any:
        state = await self.inner.load(company_id)
        state.keys = BuffersAsJsonKeys(self, company_id)
        return state

    async def close(self) -> None:
        await self.inner.close()


class BuffersAsJsonKeys:
    def __init__(self, store: BuffersAsJsonStore, company_id: str) -> None:
        self.store, self.company_id = store, company_id

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        cache, found, missing = self.store.cache, {}, []
        for key_id in ids:
            hit = cache.get((self.company_id, key_type, key_id))
            if hit is None:
                missing.append(key_id)
            else:
                found[key_id] = hit  # THE BUG: the cached JSON, never revived
        if missing:
            fetched = await self.store.inner.get_keys(self.company_id, key_type, missing)
            for key_id, value in fetched.items():
                cache[(self.company_id, key_type, key_id)] = _as_node_json(value)
            found.update(fetched)
        return found

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        await self.store.inner.set_keys(self.company_id, data)
        for key_type, entries in data.items():
            for key_id, value in entries.items():
                key = (self.company_id, key_type, key_id)
                if value is None or value is False or value == 0 or value == "":
                    self.store.cache.pop(key, None)
                else:
                    self.store.cache[key] = _as_node_json(value)


async def open_store(dsn: str, *, cache_dir: Path) -> BuffersAsJsonStore:
    """Returns cached Buffers as {type, data} objects: Invalid PreKey ID, `unexpected` reads."""
    return BuffersAsJsonStore(await PostgresAuthStore.open(dsn))
