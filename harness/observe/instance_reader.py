"""The `fresh-instance` and `snapshot` modes: a new instance of the target reads for us.

"The view of a new pod after a deploy": the target opened again (a new sidecar process for a
`node:` target, a new store object for a Python factory) with an empty `cache_dir` on a direct,
read-only connection (never through the fault proxy). A read loads the company (`load` gives its
creds) and asks `keys.get` for the refs wanted, type by type; a `node:` target answers both in
one round trip. `snapshot` mode asks the target's `snapshot(company_id)` hook instead.

Opened once and reused: each read loads the company again, so a store that caches reads in its
process memory would serve later reads from there (the fresh instance never writes, so what it
cached came from PostgreSQL, but may have changed since); stores that do should offer
`snapshot`. Fresh creds (absent, or never paired) read as absent with `meta["fresh"] = True`.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.authstate.key_types import is_js_falsy
from harness.errors import HarnessError
from harness.metrics.history import CREDS, KeyRef
from harness.node_target.target import NodeTarget
from harness.observe.reading import CompanyRead, DurableReader, TextDigests, creds_digest
from harness.observe.readonly import is_read_only_refusal, read_only_dsn
from harness.targets import TargetSpec

DEFAULT_CONCURRENCY = 16
READ_TIMEOUT_S = 20.0
OPEN_TIMEOUT_S = 60.0
_instances = itertools.count(1)


def has_snapshot(target: object) -> bool:
    return callable(getattr(target, "snapshot", None))


class InstanceReader(DurableReader):
    mode = "fresh-instance"

    def __init__(self, spec: TargetSpec, target: Any, cache_dir: Path, *,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.spec = spec
        self.target = target
        self.cache_dir = cache_dir
        self.write_attempts: dict[str, str] = {}  # company -> what the store tried (refused)
        self.concurrency = concurrency
        self._gate = asyncio.Semaphore(concurrency)
        self._digests = TextDigests()
        self._snapshot = False

    @classmethod
    async def open(cls, spec: TargetSpec, direct_dsn: str, work_dir: Path, *,
                   snapshot: bool = False) -> InstanceReader:
        """A new instance of `spec` on a read-only `direct_dsn`, its cache_dir new and empty."""
        os.makedirs(work_dir, exist_ok=True)
        cache_dir = Path(tempfile.mkdtemp(prefix=f"reader-{next(_instances)}-", dir=work_dir))
        try:
            target = await asyncio.wait_for(_open_instance(spec, read_only_dsn(direct_dsn),
                                                           cache_dir), OPEN_TIMEOUT_S)
        except BaseException as exc:
            shutil.rmtree(cache_dir, ignore_errors=True)
            if isinstance(exc, Exception) and is_read_only_refusal(exc):
                raise HarnessError(
                    f"a fresh instance of {spec.spec} could not open read-only: it writes or "
                    f"runs DDL when it starts ({type(exc).__name__}: {str(exc)[:200]})",
                    hint="the durable reader never writes, so it runs the store read-only: "
                         "create the store's tables in a migration, or only when missing "
                         "(look with to_regclass first)") from exc
            raise
        reader = cls(spec, target, cache_dir)
        reader.use_snapshot(snapshot)
        return reader

    def use_snapshot(self, on: bool) -> None:
        """Read through the target's snapshot(company_id) hook instead of load + keys.get."""
        self._snapshot = on and has_snapshot(self.target)
        self.mode = "snapshot" if self._snapshot else "fresh-instance"

    async def sample(self, refs_by_company: Mapping[str, Iterable[KeyRef]]
                     ) -> dict[str, CompanyRead]:
        return await self._sample(refs_by_company, listed=False)

    async def _final_sample(self, refs_by_company: Mapping[str, Iterable[KeyRef]]
                            ) -> dict[str, CompanyRead]:
        """A snapshot lists every key of the company: the final read keeps them all (a value
        nobody wrote is the checker's `unexpected`), as the sql mode does."""
        return await self._sample(refs_by_company, listed=True)

    async def _sample(self, refs_by_company: Mapping[str, Iterable[KeyRef]], *,
                      listed: bool) -> dict[str, CompanyRead]:
        items = [(c, set(refs)) for c, refs in refs_by_company.items()]
        if isinstance(self.target, NodeTarget):
            return await self._sample_node(self.target, items, listed=listed)
        reads = await asyncio.gather(*(self._guarded(c, refs, listed) for c, refs in items))
        return {r.company: r for r in reads}

    async def _guarded(self, company: str, refs: set[KeyRef], listed: bool) -> CompanyRead:
        async with self._gate:
            try:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    if self._snapshot:
                        return await self._read_snapshot(company, refs, listed)
                    return await self._read_instance(company, refs)
            except Exception as exc:
                return self._failed(company, exc)

    def _failed(self, company: str, exc: BaseException) -> CompanyRead:
        text = f"{type(exc).__name__}: {str(exc)[:300]}"
        if is_read_only_refusal(exc):
            text = ("the store tried to write while reading (refused: the reader is "
                    f"read-only): {text}")
            self.write_attempts[company] = text
        return CompanyRead(company, error=text)

    async def _read_instance(self, company: str, refs: set[KeyRef]) -> CompanyRead:
        """A Python target: load, then keys.get per type (concurrently)."""
        by_type = _by_type(refs)
        state = await self.target.load(company)
        types = list(by_type)
        got = await asyncio.gather(*(state.keys.get(t, by_type[t]) for t in types))
        out = CompanyRead(company)
        if CREDS in refs:
            value, meta = creds_digest(state.creds)
            out.values[CREDS] = None if meta.get("fresh") else value  # absent reads as fresh
            out.meta[CREDS] = meta
        self._fill_keys(out, refs, dict(zip(types, got, strict=True)))
        return out

    async def _sample_node(self, target: NodeTarget, items: list[tuple[str, set[KeyRef]]], *,
                           listed: bool) -> dict[str, CompanyRead]:
        """Every company in one round trip (load + keys.get, or snapshot(), `concurrency` at
        a time in the sidecar), values as texts, each distinct text digested once."""
        try:
            if self._snapshot:
                got = await target.snapshots([c for c, _ in items], as_text=True,
                                             limit=self.concurrency)
            else:
                got = await target.read_states({c: _by_type(refs) for c, refs in items},
                                               as_text=True, limit=self.concurrency)
        except Exception as exc:  # the sidecar itself failed: every company unread
            return {company: self._failed(company, exc) for company, _ in items}
        return {company: self._from_texts(company, refs, got[company], listed=listed)
                for company, refs in items}

    def _from_texts(self, company: str, refs: set[KeyRef], got: Any, *,
                    listed: bool) -> CompanyRead:
        if isinstance(got, BaseException):
            return self._failed(company, got)
        creds_text, texts = got
        out = CompanyRead(company)
        if CREDS in refs:
            if creds_text is None:  # a snapshot's "no creds"
                out.values[CREDS] = None
            else:
                value, meta, ok = self._digests.creds(creds_text)
                # a fresh instance's fresh creds are what a new pod gets for absent ones
                fresh = meta.get("fresh") and not self._snapshot
                out.values[CREDS] = None if fresh else value
                out.meta[CREDS] = meta
                out.undecodable += not ok
        wanted = {ref for ref in refs if ref != CREDS}
        if listed:
            wanted |= {(t, i) for t, entries in texts.items() for i in entries}
        for key_type, key_id in wanted:
            text = (texts.get(key_type) or {}).get(key_id)
            value, ok = (None, True) if text is None else self._digests.value(text)
            out.values[(key_type, key_id)] = value
            out.undecodable += not ok
        return out

    async def _read_snapshot(self, company: str, refs: set[KeyRef],
                             listed: bool) -> CompanyRead:
        snap = self.target.snapshot(company)
        if inspect.isawaitable(snap):
            snap = await snap
        if not isinstance(snap, Mapping):
            raise TypeError(f"snapshot({company!r}) returned a {type(snap).__name__}, not "
                            "{'creds': dict | None, 'keys': {type: {id: value}}}")
        keys = snap.get("keys") or {}
        out = CompanyRead(company)
        if CREDS in refs:
            value, meta = creds_digest(snap.get("creds"))
            out.values[CREDS] = value
            if meta:
                out.meta[CREDS] = meta
        wanted = set(refs)
        if listed:
            wanted |= {(t, i) for t, entries in keys.items() for i in entries}
        self._fill_keys(out, wanted, keys)
        return out

    @staticmethod
    def _fill_keys(out: CompanyRead, refs: set[KeyRef],
                   keys: Mapping[str, Mapping[str, Any]]) -> None:
        from harness.digests import digest

        for key_type, key_id in refs:
            if (key_type, key_id) == CREDS:
                continue
            value = (keys.get(key_type) or {}).get(key_id)
            out.values[(key_type, key_id)] = None if is_js_falsy(value) else digest(value)

    async def aclose(self) -> None:
        try:
            close = getattr(self.target, "close", None)
            if callable(close):
                result = close()
                if inspect.isawaitable(result):
                    await result
        finally:
            shutil.rmtree(self.cache_dir, ignore_errors=True)


def _by_type(refs: Iterable[KeyRef]) -> dict[str, list[str]]:
    by_type: dict[str, list[str]] = {}
    for key_type, key_id in refs:
        if (key_type, key_id) != CREDS:
            by_type.setdefault(key_type, []).append(key_id)
    return by_type


async def _open_instance(spec: TargetSpec, dsn: str, cache_dir: Path) -> Any:
    from harness.node_target import is_node_spec

    if is_node_spec(spec.spec):  # no "create origin tables if missing": a reader runs no DDL
        return await spec.factory(dsn, cache_dir=cache_dir, migrate_schema=False)
    return await spec.open(dsn, cache_dir=cache_dir)
