"""Durable state, read from outside the store: what a new pod would see after a deploy.

The checker and the observer need the truth about what PostgreSQL holds, not the store's word.
`open_reader` gives a `DurableReader` that reads it in one of three ways, chosen per target:

- `sql`: the harness's own tables (`whatsapp_auth`, `whatsapp_keys`), for stores that keep them;
- `fresh-instance`: a new instance of the target (a new sidecar for `node:` targets), an empty
  `cache_dir`, a direct read-only connection, reading creds (`load`) and the keys asked for
  (`keys.get`): works for any schema;
- `snapshot`: the target's optional `snapshot(company_id)` hook, on that fresh instance.

Modules: `durable` (the API, `FinalRead`, mode detection), `sql_reader`, `instance_reader`,
`readonly` (the read-only DSN that keeps a reader from ever writing).
"""

from harness.observe.durable import (
    CompanyRead,
    DurableReader,
    FinalRead,
    ReaderMode,
    open_reader,
    refs_of_history,
)

__all__ = ["CompanyRead", "DurableReader", "FinalRead", "ReaderMode", "open_reader",
           "refs_of_history"]
