"""The durable reader's API: what a read returns, and `open_reader`, which picks the mode.

    async with open_reader(spec, direct_dsn, work_dir, companies=ids) as reader:
        state = await reader.read("acme", [CREDS, ("session", "55119.0")])   # one company
        sample = await reader.sample({"acme": refs, ...})                    # the observer
        final = await reader.read_all(ids, refs_by_company)                  # the checker

Values come back as digests (`harness.chaos.values.digest`, the form the history records),
None for absent; creds also carry `meta["fresh"]` (never paired: `initAuthCreds()`-like), the
checker's `creds-reset` signal. A reader never writes: its sessions are read-only
(`readonly.py`); a store that tries to write while reading is noted, never obeyed.

Mode `auto` picks `sql` for the harness's own stores, and for any target whose creds the
harness's tables hold exactly as a fresh instance of the target loads them (probed on up to
three companies: empty tables created by the Node bridge's "create origin tables if missing"
step, or stale rows, never fool it); else `snapshot` when the target has the hook, else
`fresh-instance`. Detection needs the companies' data to exist: open the reader after the
workload's setup, or name the mode.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.authstate import codec
from harness.chaos.values import digest, is_fresh
from harness.errors import ConfigError
from harness.metrics.history import CREDS, History, KeyRef
from harness.targets import BUILTIN_TARGETS, TargetSpec

log = logging.getLogger("harness.observe")

ReaderMode = Literal["sql", "fresh-instance", "snapshot"]
RequestedMode = Literal["auto", "sql", "fresh-instance", "snapshot"]
MODES: tuple[str, ...] = ("auto", "sql", "fresh-instance", "snapshot")
FinalKey = tuple[str, KeyRef]
PROBE_COMPANIES = 3


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


def refs_of_history(history: History) -> dict[str, set[KeyRef]]:
    """Every key ref the history touched, per company (creds included): what a reader that
    cannot list a store's keys (fresh-instance) is asked for."""
    refs: dict[str, set[KeyRef]] = {}
    for op in history.ops():
        refs.setdefault(op.company, {CREDS}).update(op.keys)
    return refs


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
        import time

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
            r = reads[company]
            if r.error is not None:
                out.unreadable[company] = r.error
                continue
            for ref, value in r.values.items():
                out.final[(company, ref)] = value
            for ref, meta in r.meta.items():
                out.final_meta[(company, ref)] = meta
            out.rows += r.present
            out.undecodable += r.undecodable
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


@contextlib.asynccontextmanager
async def open_reader(target_spec: TargetSpec, direct_dsn: str, work_dir: Path, *,
                      mode: RequestedMode = "auto", admin_dsn: str | None = None,
                      companies: Sequence[str] = ()) -> AsyncIterator[DurableReader]:
    """A reader of `target_spec`'s durable state on the database `direct_dsn` names (never
    through the fault proxy). `admin_dsn` (default `direct_dsn`) reads the harness's tables;
    `work_dir` holds the fresh instance's empty cache_dir; `companies` lets `auto` probe."""
    if mode not in MODES:
        raise ConfigError(f"unknown durable reader mode {mode!r}",
                          hint=f"use one of {', '.join(MODES)}")
    reader = await _open(target_spec, direct_dsn, Path(work_dir), mode, admin_dsn or direct_dsn,
                         list(companies))
    try:
        yield reader
    finally:
        await reader.aclose()


async def _open(spec: TargetSpec, direct_dsn: str, work_dir: Path, mode: RequestedMode,
                sql_dsn: str, companies: list[str]) -> DurableReader:
    from harness.observe.instance_reader import InstanceReader, has_snapshot
    from harness.observe.sql_reader import SqlReader

    if mode == "sql" or (mode == "auto" and spec.spec in BUILTIN_TARGETS):
        reader: DurableReader = await SqlReader.open(sql_dsn)
        reader.detail = ("named" if mode == "sql" else
                         f"{spec.spec} keeps the harness's tables")
        return reader
    instance = await InstanceReader.open(spec, direct_dsn, work_dir, snapshot=False)
    try:
        if mode == "snapshot" and not has_snapshot(instance.target):
            raise ConfigError(f"target {spec.spec} has no snapshot(company_id) hook",
                              hint="add the hook (docs/own-store.md), or use the "
                                   "fresh-instance mode")
        if mode == "auto":
            agree, why = await _tables_serve_target(sql_dsn, instance, companies)
            if agree:
                await instance.aclose()
                reader = await SqlReader.open(sql_dsn)
                reader.detail = why
                return reader
            if has_snapshot(instance.target):
                mode = "snapshot"
            instance.detail = why
        instance.use_snapshot(mode == "snapshot")
        return instance
    except BaseException:
        await instance.aclose()
        raise


async def _tables_serve_target(sql_dsn: str, instance: Any,
                               companies: list[str]) -> tuple[bool, str]:
    """(True, why) when the harness's tables hold the companies' creds exactly as a fresh
    instance of the target loads them."""
    from harness.observe.sql_reader import SqlReader

    if not companies:
        return False, "no companies to probe the harness's tables with"
    sql = await SqlReader.open(sql_dsn)
    try:
        held = await sql.companies_with_creds(companies)
        if not held:
            return False, "the harness's tables hold no creds of the companies"
        probe = held[:PROBE_COMPANIES]
        from_sql = await sql.sample({c: [CREDS] for c in probe})
    finally:
        await sql.aclose()
    from_target = await instance.sample({c: [CREDS] for c in probe})
    for company in probe:
        mine, theirs = from_sql[company], from_target[company]
        if theirs.error is not None or mine.values.get(CREDS) != theirs.values.get(CREDS):
            return False, (f"the harness's tables hold creds of {company} that a fresh "
                           "instance of the target does not load: not its storage")
    return True, (f"the harness's tables hold the creds a fresh instance loads "
                  f"({len(probe)} companies probed)")
