"""The durable reader's API: what a read returns, and `open_reader`, which picks the mode.

    async with open_reader(spec, direct_dsn, work_dir, companies=ids) as reader:
        state = await reader.read("acme", [CREDS, ("session", "55119.0")])   # one company
        sample = await reader.sample({"acme": refs, ...})                    # the observer
        final = await reader.read_all(ids, refs_by_company)                  # the checker

Values come back as digests (`harness.digests.digest`, the form the history records),
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
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Literal

from harness.errors import ConfigError
from harness.metrics.history import CREDS, History, KeyRef
from harness.observe.instance_reader import InstanceReader, has_snapshot
from harness.observe.reading import (  # the API, re-exported: import it from here
    CompanyRead,
    DurableReader,
    FinalKey,
    FinalRead,
    ReaderMode,
    TextDigests,
    creds_digest,
    digest_text,
)
from harness.observe.sql_reader import SqlReader
from harness.targets import BUILTIN_TARGETS, TargetSpec

__all__ = ["MODES", "CompanyRead", "DurableReader", "FinalKey", "FinalRead", "ReaderMode",
           "RequestedMode", "TextDigests", "creds_digest", "digest_text", "open_reader",
           "refs_of_history"]

log = logging.getLogger("harness.observe")

RequestedMode = Literal["auto", "sql", "fresh-instance", "snapshot"]
MODES: tuple[str, ...] = ("auto", "sql", "fresh-instance", "snapshot")
PROBE_COMPANIES = 3


def refs_of_history(history: History) -> dict[str, set[KeyRef]]:
    """Every key ref the history touched, per company (creds included): what a reader that
    cannot list a store's keys (fresh-instance) is asked for."""
    refs: dict[str, set[KeyRef]] = {}
    for op in history.ops():
        refs.setdefault(op.company, {CREDS}).update(op.keys)
    return refs


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
