"""The final read: the durable state of the scenario's companies, read from outside the target.

After the fault is healed and the target has settled, the checker needs the truth, not what the
target says. `harness.observe` reads it with a direct connection (bypassing the proxy and the
target under test): the harness's tables for stores that keep them (every row of the companies),
else a fresh instance of the target (empty cache_dir, read-only) or its `snapshot` hook, asked
for the creds and every key the history touched. Values are digested as the driver digested the
value it wrote; creds carry a `fresh` flag (no `me` / not registered): paired creds replaced by
fresh ones is the checker's `creds-reset`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.metrics.history import KeyRef
from harness.observe.durable import FinalKey, FinalRead, RequestedMode, open_reader
from harness.observe.sql_reader import SqlReader

__all__ = ["FinalKey", "FinalRead", "final_read"]


async def final_read(admin_dsn: str, companies: Sequence[str], *, timeout_s: float = 60.0,
                     target_spec: Any = None, direct_dsn: str | None = None,
                     refs_by_company: Mapping[str, Iterable[KeyRef]] | None = None,
                     work_dir: Path | None = None, mode: RequestedMode = "auto") -> FinalRead:
    """Creds and keys of `companies` as durable state holds them.

    Without `target_spec`: the harness's tables through `admin_dsn` (the historic behaviour).
    With it: `harness.observe.open_reader` picks the mode (`sql` for stores on the harness's
    tables, else `snapshot` / `fresh-instance` on `direct_dsn`, default `admin_dsn`), asked for
    `refs_by_company` (`harness.observe.refs_of_history(history)`)."""
    if target_spec is None:
        reader = await SqlReader.open(admin_dsn, timeout_s=timeout_s)
        try:
            return await reader.read_all(companies, refs_by_company)
        finally:
            await reader.aclose()
    with tempfile.TemporaryDirectory(prefix="final-read-", dir=work_dir) as scratch:
        async with open_reader(target_spec, direct_dsn or admin_dsn, Path(scratch), mode=mode,
                               admin_dsn=admin_dsn, companies=companies) as durable:
            final = await durable.read_all(companies, refs_by_company)
            if durable.detail:
                final.notes.insert(0, f"final read: {durable.mode} ({durable.detail})")
            return final
