"""What the broken-journal targets share: the resilient store with its journal broken on the
instance, and the same tables read plainly by the harness's durable reader.

The reader (harness/observe) opens a fresh instance of the target on a read-only session to
read what is durable; the resilient store, rightly, starts degraded on a server that accepts no
writes, so for that instance the target opens the reference store on the same tables: reading
durable state needs no journal, and the journal is what these targets break.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.observe.readonly import READ_ONLY_OPTION
from harness.targets import resolve_target

_READ_ONLY = READ_ONLY_OPTION.split()[-1].split("=")[0]  # default_transaction_read_only


async def open_with_broken_journal(dsn: str, cache_dir: Path,
                                   break_journal: Callable[[Any], None]) -> Any:
    if _READ_ONLY in dsn:  # the durable reader's instance: it only reads the tables
        return await resolve_target("reference").open(dsn, cache_dir=cache_dir)
    store = await resolve_target("resilient").open(dsn, cache_dir=cache_dir)
    break_journal(store._journal)
    return store
