"""BROKEN ON PURPOSE: a write-behind store that says every write came from the database.

`keys.set` and `save_creds` put the data in memory and return at once; a flusher writes each
call to PostgreSQL once it is 2.5 s old (keeping it, in order, while that fails; the rest at a
graceful close). Reads answer
from that memory first. `last_source()` always says "db". Nothing is lost in the end, so the
checker finds no anomaly: what is wrong is the recovery the store claims. By its own word
(every write "from the database", right after the clear) its RTO is ~0 s; the observer, reading
PostgreSQL itself, sees each write arrive 2.5 s after it was acknowledged: the observed RTO
misses the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.authstate.errors import StoreError
from tests.chaos.broken_targets._wrapped import KeyWrites, WrappedStore, js_falsy

FLUSH_AFTER_S = 2.5


class WriteBehindLiesStore(WrappedStore):
    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.queue: list[tuple[float, str, str, Any]] = []  # (acked at, company, what, data)
        self.memory: dict[tuple[str, str, str], tuple[int, Any]] = {}  # key: (call, value)
        self.creds: dict[str, dict[str, Any]] = {}
        self.flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    def last_source(self) -> str:
        return "db"  # THE LIE

    async def set_keys(self, company_id: str, data: KeyWrites) -> None:
        data = copy.deepcopy({t: dict(e) for t, e in data.items()})
        self.queue.append((time.monotonic(), company_id, "keys", data))
        for key_type, entries in data.items():
            for key_id, value in entries.items():
                self.memory[(company_id, key_type, key_id)] = (id(data), value)

    async def write_creds(self, company_id: str, creds: dict[str, Any]) -> None:
        creds = copy.deepcopy(creds)
        self.queue.append((time.monotonic(), company_id, "creds", creds))
        self.creds[company_id] = creds

    async def read_creds(self, company_id: str) -> dict[str, Any] | None:
        if company_id in self.creds:
            return copy.deepcopy(self.creds[company_id])
        return await super().read_creds(company_id)

    async def get_keys(self, company_id: str, key_type: str,
                       ids: Iterable[str]) -> dict[str, Any]:
        ids = list(ids)
        memory = {i: self.memory[(company_id, key_type, i)][1] for i in ids
                  if (company_id, key_type, i) in self.memory}
        found = {i: v for i, v in memory.items() if not js_falsy(v)}
        rest = [i for i in ids if i not in memory]
        if rest:
            found.update(await super().get_keys(company_id, key_type, rest))
        return found

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            await self.flush_older_than(FLUSH_AFTER_S)

    async def flush_older_than(self, age_s: float) -> None:
        """Write every queued call at least `age_s` old, each company's in order, companies
        side by side; a company whose write fails keeps it (and what follows) for next time."""
        now = time.monotonic()
        due = [entry for entry in self.queue if now - entry[0] >= age_s]
        by_company: dict[str, list[tuple[float, str, str, Any]]] = {}
        for entry in due:
            by_company.setdefault(entry[1], []).append(entry)

        async def flush(entries: list[tuple[float, str, str, Any]]) -> None:
            for entry in entries:
                _, company_id, what, data = entry
                try:
                    if what == "keys":
                        await self.inner.set_keys(company_id, data)
                    else:
                        await self.inner.write_creds(company_id, data)
                except StoreError:
                    return  # kept, in order, for the next try
                self.queue.remove(entry)
                self._forget_flushed(company_id, what, data)

        await asyncio.gather(*(flush(entries) for entries in by_company.values()))

    def _forget_flushed(self, company_id: str, what: str, data: Any) -> None:
        if what == "creds":
            if self.creds.get(company_id) is data:
                del self.creds[company_id]
            return
        for key_type, entries in data.items():
            for key_id in entries:
                key = (company_id, key_type, key_id)
                if key in self.memory and self.memory[key][0] == id(data):
                    del self.memory[key]

    async def close(self) -> None:
        self.flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.flusher
        await self.flush_older_than(0.0)  # a graceful close writes what it still holds
        await super().close()


async def open_store(dsn: str, *, cache_dir: Path) -> WriteBehindLiesStore:
    """Acknowledges from memory, writes 2.5 s later, claims the database: its true RTO is
    observed, not taken from it."""
    return await WriteBehindLiesStore.open(dsn)
