"""What a durable read returns, and the reader's interface: shared by every mode.

`DurableReader.sample` reads exactly the refs asked for (the observer); `read_all` the final
state the checker judges. Values are digests (`harness.digests.digest`, the form the
history records), None for absent; creds carry `meta["fresh"]`. The modes are in `sql_reader`
and `instance_reader`; `durable.open_reader` picks one.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.authstate import codec
from harness.digests import digest, is_fresh
from harness.metrics.history import CREDS, KeyRef

ReaderMode = Literal["sql", "fresh-instance", "snapshot"]
FinalKey = tuple[str, KeyRef]


@dataclass
class CompanyRead:
    """One company's durable state as digests: `values[ref]` None = absent."""

    company: str
    values: dict[KeyRef, str | None] = field(default_factory=dict)
    meta: dict[KeyRef, dict[str, Any]] = field(default_factory=dict)
    undecodable: int = 0  # values the codec refused (digested as raw text)
    error: str | None = None  # the read failed: nothing above is known

    @property
    def present(self) -> int:
        return sum(v is not None for v in self.values.values())


@dataclass
class FinalRead:
    """The state the checker judges: every key the reader saw, None = absent."""

    final: dict[FinalKey, str | None] = field(default_factory=dict)
    final_meta: dict[FinalKey, dict[str, Any]] = field(default_factory=dict)
    rows: int = 0
    undecodable: int = 0  # rows whose JSON the codec refused (digested as raw text)
    seconds: float = 0.0
    mode: str = "sql"
    # companies the reader could not read (the store threw, or tried to write): their keys are
    # absent from `final`, which a checker must not take for "absent in PostgreSQL"
    unreadable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, read: CompanyRead) -> None:
        """One company's read into the whole: its values, or (read failed) its error."""
        if read.error is not None:
            self.unreadable[read.company] = read.error
            return
        for ref, value in read.values.items():
            self.final[(read.company, ref)] = value
        for ref, meta in read.meta.items():
            self.final_meta[(read.company, ref)] = meta
        self.rows += read.present
        self.undecodable += read.undecodable


def creds_digest(creds: Any) -> tuple[str | None, dict[str, Any]]:
    """(digest, meta) of creds as a reader found them (None = absent)."""
    if creds is None:
        return None, {}
    return digest(creds), {"fresh": is_fresh(creds)}


def digest_text(text: str) -> tuple[str, bool]:
    """Digest of a stored JSON text decoded with the store's codec; (raw digest, False) when
    the codec refuses it (a value no write produced: the checker calls it unexpected)."""
    try:
        return digest(codec.unwrap_plain(codec.loads(text))), True
    except Exception:
        return "raw:" + hashlib.sha256(text.encode()).hexdigest()[:12], False


class TextDigests:
    """Digests of JSON texts, each distinct text decoded and digested once: an observer reads
    the same values every 100 ms, and the digest's canonical form, not the read, was most of a
    sample's cost. Keyed by (length, hash) of the text, not the text: bounded memory, and a
    collision among a run's ~10^6 texts is ~10^-8 likely."""

    def __init__(self, max_entries: int = 500_000) -> None:
        self._values: dict[tuple[int, int], tuple[str, bool]] = {}
        self._creds: dict[tuple[int, int], tuple[str | None, dict[str, Any], bool]] = {}
        self.max_entries = max_entries

    def value(self, text: str) -> tuple[str, bool]:
        """(digest, decodable) of a key's stored text."""
        key = (len(text), hash(text))
        found = self._values.get(key)
        if found is None:
            if len(self._values) >= self.max_entries:
                self._values.clear()
            found = self._values[key] = digest_text(text)
        return found

    def creds(self, text: str) -> tuple[str | None, dict[str, Any], bool]:
        """(digest, meta, decodable) of a creds text (meta: {"fresh": ...})."""
        key = (len(text), hash(text))
        found = self._creds.get(key)
        if found is None:
            if len(self._creds) >= self.max_entries:
                self._creds.clear()
            try:
                value, meta = creds_digest(codec.unwrap_plain(codec.loads(text)))
                found = (value, meta, True)
            except Exception:
                found = (digest_text(text)[0], {}, False)
            self._creds[key] = found
        return found


class DurableReader(ABC):
    """Reads durable state from outside the store under test; opened once, read many times."""

    mode: ReaderMode
    detail: str = ""  # why this mode (auto) or what it reads

    @abstractmethod
    async def sample(self, refs_by_company: Mapping[str, Iterable[KeyRef]]
                     ) -> dict[str, CompanyRead]:
        """Exactly the refs asked for, per company (CREDS among them reads creds)."""

    async def read(self, company: str, refs: Iterable[KeyRef]) -> CompanyRead:
        return (await self.sample({company: refs}))[company]

    async def read_all(self, companies: Sequence[str],
                       refs_by_company: Mapping[str, Iterable[KeyRef]] | None = None,
                       *, attempts: int = 3) -> FinalRead:
        """The final read: creds of every company and the refs asked for (a mode that can
        list a company's rows, sql, reads them all). A company whose read failed is retried
        `attempts` times, then listed in `unreadable`."""
        started = time.monotonic()
        wanted = {c: {CREDS, *(refs_by_company or {}).get(c, ())} for c in companies}
        reads: dict[str, CompanyRead] = {}
        pending = dict(wanted)
        for _ in range(max(1, attempts)):
            got = await self._final_sample(pending)
            reads.update(got)
            pending = {c: pending[c] for c, r in got.items() if r.error is not None}
            if not pending:
                break
        out = FinalRead(mode=self.mode)
        for company in companies:
            out.add(reads[company])
        if out.unreadable:
            first = next(iter(out.unreadable.items()))
            out.notes.append(f"{self.mode} reader: {len(out.unreadable)} company(ies) "
                             f"unreadable, e.g. {first[0]}: {first[1]}")
        out.seconds = time.monotonic() - started
        return out

    async def _final_sample(self, refs_by_company: Mapping[str, Iterable[KeyRef]]
                            ) -> dict[str, CompanyRead]:
        """What `read_all` reads: the refs, plus whatever else the mode can list."""
        return await self.sample(refs_by_company)

    @abstractmethod
    async def aclose(self) -> None:
        """Release what the reader holds (a connection, a fresh instance)."""


