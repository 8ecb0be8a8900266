"""The pending overlay: the newest journaled value of every key (and creds) not yet in PostgreSQL.

Reads lay it over what PostgreSQL or the cache says, so a read never goes back in time while a
write waits in the journal. Entries are never evicted: each one leaves only when the record that
set it is in PostgreSQL (and only if no later record set the key again).

A record counts for its company from the moment it is queued (`reserve`: the company's later
writes must go to the journal behind it) but its values are shown to readers only once it is on
disk (`publish`): until then the write is not acknowledged, and if the disk fails it never will
be (`release`), so no reader may have seen it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from harness.authstate.resilient.records import KEYS, JournalRecord

KeyRef = tuple[str, str]  # (key type, key id)


class PendingOverlay:
    """Per company: (type, id) -> (seq, JSON text | None = deleted); creds -> (seq, text)."""

    __slots__ = ("_creds", "_keys", "creds_records", "key_records")

    def __init__(self) -> None:
        self._keys: dict[str, dict[KeyRef, tuple[int, str | None]]] = {}
        self._creds: dict[str, tuple[int, str]] = {}
        self.key_records: Counter[str] = Counter()  # company -> pending keys records
        self.creds_records: Counter[str] = Counter()

    def add(self, record: JournalRecord) -> None:
        """A record already on disk (found at open): `reserve` and `publish` at once."""
        self.reserve(record)
        self.publish(record)

    def reserve(self, record: JournalRecord) -> None:
        """A record was queued for the disk: its company now has journaled writes (later
        writes of it go to the journal behind it), but readers do not see it yet."""
        counter = self.key_records if record.kind == KEYS else self.creds_records
        counter[record.company] += 1

    def release(self, record: JournalRecord) -> None:
        """A reserved record never reached the disk (the write failed): forget it."""
        _decrement(self.key_records if record.kind == KEYS else self.creds_records,
                   record.company)

    def publish(self, record: JournalRecord) -> None:
        """A reserved record is on disk (acknowledged): readers see its values from now on."""
        seq, company = record.seq, record.company
        if record.kind == KEYS:
            entries = self._keys.get(company)
            if entries is None:
                entries = self._keys[company] = {}
            for key_type, key_id, text in record.rows:
                ref = (key_type, key_id)
                current = entries.get(ref)
                if current is None or current[0] < seq:
                    entries[ref] = (seq, text)
        else:
            current_creds = self._creds.get(company)
            if current_creds is None or current_creds[0] < seq:
                self._creds[company] = (seq, record.creds)  # type: ignore[assignment]

    def applied(self, record: JournalRecord) -> Iterator[tuple[KeyRef | None, str | None]]:
        """Forget what `record` set (unless a later record set it again); yield each dropped
        entry as (key ref, text), (None, creds text) for creds, so the caller can cache it."""
        seq, company = record.seq, record.company
        if record.kind == KEYS:
            _decrement(self.key_records, company)
            entries = self._keys.get(company)
            if entries is not None:
                for key_type, key_id, _text in record.rows:
                    ref = (key_type, key_id)
                    current = entries.get(ref)
                    if current is not None and current[0] == seq:
                        del entries[ref]
                        yield ref, current[1]
                if not entries:
                    del self._keys[company]
        else:
            _decrement(self.creds_records, company)
            current_creds = self._creds.get(company)
            if current_creds is not None and current_creds[0] == seq:
                del self._creds[company]
                yield None, current_creds[1]

    def keys_of(self, company: str) -> dict[KeyRef, tuple[int, str | None]] | None:
        return self._keys.get(company)

    def creds_of(self, company: str) -> str | None:
        entry = self._creds.get(company)
        return None if entry is None else entry[1]

    def has_keys(self, company: str) -> bool:
        return company in self.key_records

    def has_creds(self, company: str) -> bool:
        return company in self.creds_records

    def company_ids(self) -> set[str]:
        return self.key_records.keys() | self.creds_records.keys()

    @property
    def companies(self) -> int:
        return len(self.key_records.keys() | self.creds_records.keys())


def _decrement(counter: Counter[str], company: str) -> None:
    left = counter[company] - 1
    if left > 0:
        counter[company] = left
    else:
        del counter[company]
