"""A DSN whose sessions cannot write: how a durable reader guarantees it never changes what it
observes, even when the store it runs writes on load (fresh creds for an absent company).

PostgreSQL's startup `options` (`-c default_transaction_read_only=on`) is understood the same way
by libpq/psycopg, asyncpg (it passes unknown URL parameters to the server as startup settings)
and node-postgres (`options` in the URL, or PGOPTIONS). Any INSERT / UPDATE / DELETE / DDL then
fails with SQLSTATE 25006, which `is_read_only_refusal` recognises.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from harness.errors import ConfigError

READ_ONLY_OPTION = "-c default_transaction_read_only=on"
READ_ONLY_SQLSTATE = "25006"


def read_only_dsn(dsn: str) -> str:
    """`dsn` (a postgres:// URL) with read-only sessions; existing `options` are kept."""
    parts = urlsplit(dsn)
    if not parts.scheme.startswith("postgres"):
        raise ConfigError(f"the durable reader needs a postgresql:// URL DSN, got {parts.scheme!r}",
                          hint="pass the database as postgresql://user:password@host:port/db")
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = [v for k, v in query if k == "options"]
    rest = [(k, v) for k, v in query if k != "options"]
    merged = " ".join([*options, READ_ONLY_OPTION]).strip()
    # %20, not "+": libpq decodes only percent escapes
    query_text = urlencode([*rest, ("options", merged)], quote_via=quote)
    return urlunsplit(parts._replace(query=query_text))


def is_read_only_refusal(exc: BaseException) -> bool:
    """The store tried to write (or run DDL) through the reader's read-only session."""
    seen: set[int] = set()
    current: Any = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for attr in ("sqlstate", "js_code", "pgcode"):
            if getattr(current, attr, None) == READ_ONLY_SQLSTATE:
                return True
        if "read-only transaction" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False
