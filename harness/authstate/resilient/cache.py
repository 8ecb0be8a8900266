"""The in-memory cache: JSON text of keys and creds, bounded by bytes, least recently used first.

Entries are what this process last read from or wrote to PostgreSQL: text (a known value) or
None (PostgreSQL said the key or creds are absent: a *negative* entry, so "absent" is answered
during an outage only when it is known). Writes waiting in the journal are not here: they live
in the pending overlay, which is never evicted.

`ReadGuard` keeps a database read that raced a write from caching (or returning) the older
value: a read registers the (company, type) it reads; a write that completes meanwhile records
its ids and values on every such registration. The read answers those ids with the recorded
values and does not cache its own. This matters most for replay: a read whose snapshot predates
the replay of a journaled write, finishing after the write left the pending overlay, would
otherwise return the value from before a write acknowledged earlier (a stale read).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Final

CacheKey = tuple[str, str, str]  # (company, key type or CREDS, key id or "")
CREDS: Final = "\x00creds"  # a key type can never hold a control character: no clash
MISS: Final = object()
ENTRY_OVERHEAD = 120  # bytes of bookkeeping per entry (tuple, strings, dict slot), roughly
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


def creds_key(company: str) -> CacheKey:
    return (company, CREDS, "")


class ByteLRU:
    """Text entries (or None for "known absent") under a byte budget."""

    __slots__ = ("_data", "bytes", "evictions", "max_bytes")

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.evictions = 0
        self._data: OrderedDict[CacheKey, str | None] = OrderedDict()

    @staticmethod
    def _cost(key: CacheKey, text: str | None) -> int:
        return ENTRY_OVERHEAD + len(key[0]) + len(key[2]) + (len(text) if text else 0)

    def get(self, key: CacheKey) -> object:
        """The entry (text or None), or MISS; a hit becomes the most recently used."""
        data = self._data
        if key in data:
            data.move_to_end(key)
            return data[key]
        return MISS

    def put(self, key: CacheKey, text: str | None) -> None:
        data = self._data
        old = data.pop(key, MISS)
        if old is not MISS:
            self.bytes -= self._cost(key, old)  # type: ignore[arg-type]
        cost = self._cost(key, text)
        if cost > self.max_bytes:
            return  # larger than the whole cache: not cached at all
        data[key] = text
        self.bytes += cost
        while self.bytes > self.max_bytes:
            old_key, old_text = data.popitem(last=False)
            self.bytes -= self._cost(old_key, old_text)
            self.evictions += 1

    def put_many(self, company: str, rows: Iterable[tuple[str, str, str | None]]) -> None:
        """`put` of many (type, id, text) rows of one company: the write-through of a bulk
        `keys.set` (812 pre-keys) in one tight loop."""
        data, pop, total = self._data, self._data.pop, self.bytes
        base = ENTRY_OVERHEAD + len(company)
        for key_type, key_id, text in rows:
            key = (company, key_type, key_id)
            old = pop(key, MISS)
            if old is not MISS:
                total -= base + len(key_id) + (len(old) if old else 0)  # type: ignore[arg-type]
            data[key] = text
            total += base + len(key_id) + (len(text) if text else 0)
        self.bytes = total
        while self.bytes > self.max_bytes and data:
            old_key, old_text = data.popitem(last=False)
            self.bytes -= self._cost(old_key, old_text)
            self.evictions += 1

    def drop_company(self, company: str) -> None:
        """Forget every entry of `company` (after its keys were cleared or it was deleted)."""
        for key in [k for k in self._data if k[0] == company]:
            self.discard(key)

    def discard(self, key: CacheKey) -> None:
        old = self._data.pop(key, MISS)
        if old is not MISS:
            self.bytes -= self._cost(key, old)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


class ReadGuard:
    """What was written to the keys a database read is reading, while it was in flight."""

    __slots__ = ("_reads",)

    def __init__(self) -> None:
        self._reads: dict[tuple[str, str], list[dict[str, str | None]]] = {}

    def begin(self, company: str, key_type: str) -> dict[str, str | None]:
        """Register a read; the returned ticket collects {id: text or None} of every write
        (direct or replayed) to this company and type that completes before `end`."""
        ticket: dict[str, str | None] = {}
        reads = self._reads.get((company, key_type))
        if reads is None:
            self._reads[(company, key_type)] = [ticket]
        else:
            reads.append(ticket)
        return ticket

    def end(self, company: str, key_type: str, ticket: dict[str, str | None]) -> None:
        reads = self._reads.get((company, key_type))
        if reads is None:
            return
        for i, t in enumerate(reads):
            if t is ticket:
                del reads[i]
                break
        if not reads:
            del self._reads[(company, key_type)]

    @property
    def active(self) -> bool:
        """Any read in flight at all."""
        return bool(self._reads)

    def watching(self, company: str, key_type: str) -> bool:
        return (company, key_type) in self._reads

    def wrote(self, company: str, key_type: str,
              items: Iterable[tuple[str, str | None]]) -> None:
        reads = self._reads.get((company, key_type))
        if reads:
            written = dict(items)
            for ticket in reads:
                ticket.update(written)
