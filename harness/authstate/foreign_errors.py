"""What an error raised by a store we did not write says, judged by what it carries.

Our stores raise `StoreError`s that state their `outcome`; a team's store lets its driver's
errors through (asyncpg, psycopg, node-postgres) or raises plain `TypeError` / `ValueError`. A
correct store must not have to translate them to be judged fairly, so:

| the error carries                                         | kind    | a write's outcome |
|-----------------------------------------------------------|---------|-------------------|
| `outcome` = "failed" / "unknown" (our StoreError model)   | as said | as said           |
| TypeError, ValueError (JS TypeError, RangeError)          | refusal | failed            |
| SQLSTATE class 22 (data exception), 23 (constraint)       | refusal | failed            |
| SQLSTATE 08xxx, 53xxx, 57Pxx, 40001... (retryable_sqlstate)| outage  | unknown           |
| a network error (OSError, TimeoutError; JS ECONNRESET...) | outage  | unknown           |
| anything else                                             | error   | unknown           |

A refusal is a statement the server answered with an error, or an argument refused before any
I/O: nothing was applied (`failed`). An outage may have cut a write after it committed: unknown.
Reads change nothing, so a failed read is always `failed` whatever the kind.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from harness.authstate.db_errors import retryable_sqlstate, root_cause
from harness.authstate.errors import Outcome, StoreUnavailable

ErrorKind = Literal["refusal", "outage", "error"]
REFUSAL_CLASSES = ("22", "23")


def sqlstate_kind(code: str | None) -> ErrorKind | None:
    """The kind a PostgreSQL SQLSTATE names, or None for a code that says neither."""
    if not code or len(code) != 5:
        return None
    if code[:2] in REFUSAL_CLASSES:
        return "refusal"
    if retryable_sqlstate(code):
        return "outage"
    return None


def foreign_sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE an exception carries: asyncpg's and psycopg's `sqlstate`, psycopg2's
    `pgcode`, after asyncpg's client-side follow-ups (`db_errors.root_cause`)."""
    cause = root_cause(exc)
    for attr in ("sqlstate", "pgcode"):
        code = getattr(cause, attr, None)
        if isinstance(code, str) and len(code) == 5:
            return code
    return None


def error_kind(exc: BaseException) -> ErrorKind:
    """refusal | outage | error for any exception a target raised (module docstring)."""
    if isinstance(exc, StoreUnavailable):
        return "outage"
    kind = sqlstate_kind(foreign_sqlstate(exc))
    if kind is not None:
        return kind
    if isinstance(exc, (TypeError, ValueError)):
        return "refusal"
    if isinstance(root_cause(exc), (OSError, asyncio.TimeoutError, ConnectionError)):
        return "outage"
    return "error"


def write_outcome(exc: BaseException) -> Outcome:
    """Whether a write that raised `exc` may have been applied: the outcome the exception
    states (our model), else "failed" for a refusal and "unknown" for anything else."""
    declared = getattr(exc, "outcome", None)
    if declared in ("failed", "unknown"):
        return declared
    return "failed" if error_kind(exc) == "refusal" else "unknown"
