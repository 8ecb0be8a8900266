"""Turn what asyncpg, the OS and timeouts raise into the store's error model (`StoreError`).

    try:
        ...
    except DB_ERRORS as exc:
        raise classify(exc, operation="writing keys", company_id="acme", sent=True) from exc

`classify` decides three things, by exception class and PostgreSQL's SQLSTATE:
- retryable (`StoreUnavailable`, `StoreTimeout` for timeouts) or permanent (`StoreRejected`);
- `outcome`: "failed" when nothing that could commit reached the server (`sent=False`) or when
  the server answered the statement with an error (it rolled back); "unknown" when the
  connection was lost, timed out or was terminated (57P01/57P02) after a write that could commit
  (a single statement, or COMMIT) was sent. Callers pass `sent=False` for reads: a read changes
  nothing, so it always "failed";
- a message naming the operation and company (and, for timeouts, how long it waited) and a hint
  saying what to do: retry later, or what to fix (never "retry" for a permanent error).

The original exception is never lost: callers raise `from exc`, and an asyncpg InterfaceError
raised while handling a lost connection ("connection has been released back to the pool",
"connection is closed") is classified by the error underneath it.

A lost connection can also surface with nothing underneath: asyncpg notices the socket closing
in a callback, returns the connection's holder to the pool and detaches the proxy the caller
still holds, so the caller's *next* call on it raises InterfaceError "cannot call
Connection.transaction(): connection has been released back to the pool" (or "connection is
closed", "another operation is in progress") with no context. The store's code never uses a
connection after releasing it (`store._Lease`), so for us these mean "the connection was lost":
retryable, outcome "unknown" when a write had been sent. The lease also tells `classify` so
directly (`connection_lost=True`: its proxy was detached although it never released it).
"""

from __future__ import annotations

import asyncio
import socket
import ssl

import asyncpg

from harness.authstate.errors import (
    StoreError,
    StoreRejected,
    StoreTimeout,
    StoreUnavailable,
)

DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError, OSError,
    asyncio.TimeoutError)
"""What a database call can raise besides programming errors (TimeoutError is an OSError)."""

# SQLSTATEs after which the server is expected to serve the same call later. Classes: 08
# connection exception, 53 insufficient resources (53300 too many connections, disk full, out of
# memory: a server condition, not the request's fault), 58 system error (I/O).
_RETRYABLE_CLASSES = ("08", "53", "58")
_RETRYABLE_CODES = {
    "57P01": "PostgreSQL terminated the connection (administrator command or shutdown)",
    "57P02": "PostgreSQL terminated the connection because another server process crashed",
    "57P03": "PostgreSQL cannot accept connections now (starting up, shutting down or in "
             "crash recovery)",
    "57P05": "PostgreSQL closed the idle session (idle_session_timeout)",
    "57000": "an operator intervened on the server",
    "57014": "the statement was cancelled (statement_timeout or a cancel request)",
    "25006": "PostgreSQL accepts no writes (a standby, or default_transaction_read_only is on)",
    "25P03": "PostgreSQL ended the session (idle_in_transaction_session_timeout)",
    "40001": "the transaction hit a serialization failure",
    "40P01": "the transaction was chosen as a deadlock victim",
    "55P03": "a lock was not available in time (lock_timeout)",
    "53300": "PostgreSQL has no free connection slot (max_connections, or the role's or "
             "database's CONNECTION LIMIT)",
    "08003": "the connection to PostgreSQL was lost in the middle of the operation",
    "08006": "the connection to PostgreSQL failed",
}
# Terminations: the connection goes away, so a write sent before them may have committed.
_CONNECTION_ENDING = {"57P01", "57P02", "57P05", "25P03"}

_PERMANENT: dict[str, tuple[str, str]] = {
    "42501": ("permission denied",
              "grant the store's role access to the auth-state tables: GRANT SELECT, INSERT, "
              "UPDATE, DELETE ON whatsapp_auth, whatsapp_keys TO <role> (creating the schema "
              "also needs CREATE on the schema)"),
    "42P01": ("a table is missing",
              "create the auth-state tables (open the store with migrate_schema=True, or call "
              "ensure_schema()) and check that the DSN names the database and search_path that "
              "hold whatsapp_auth and whatsapp_keys"),
    "42703": ("a column is missing",
              "complete the schema (open the store with migrate_schema=True, or call "
              "ensure_schema()): it adds the columns an older schema lacks"),
    "3D000": ("the database does not exist",
              "check the database name in the DSN, or create the database"),
    "28000": ("the server refused the role",
              "check the user in the DSN and pg_hba.conf on the server"),
    "28P01": ("authentication failed",
              "check the user and password in the DSN (and pg_hba.conf on the server)"),
}


# asyncpg's words for a connection that died under its user (see the module docstring).
_LOST_CONNECTION_TEXTS = ("released back to the pool", "connection is closed",
                          "connection was closed", "another operation is in progress")


def retryable_sqlstate(code: str) -> bool:
    """PostgreSQL's SQLSTATE `code` says the server may serve the same call later (an outage,
    not the request's fault): classes 08, 53, 58 and the codes listed above (57P01, 40001...)."""
    return code in _RETRYABLE_CODES or code[:2] in _RETRYABLE_CLASSES or code.startswith("57P")


def sqlstate_of(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None)
    return code if isinstance(code, str) and len(code) == 5 else None


def root_cause(exc: BaseException) -> BaseException:
    """The error that says what happened, under client-side follow-ups: asyncpg raises
    InterfaceError ("released back to the pool", "connection is closed") when code touches a
    connection that a lost connection already closed, and wraps the server's farewell (e.g.
    57P01 from `pg_terminate_backend` or a fast shutdown) in ConnectionDoesNotExistError."""
    while True:
        if (isinstance(exc, (asyncpg.InterfaceError, asyncpg.InternalClientError))
                and not isinstance(exc, asyncpg.PostgresError)
                and isinstance(exc.__context__, DB_ERRORS)):
            exc = exc.__context__
        elif (isinstance(exc, asyncpg.ConnectionDoesNotExistError)
              and isinstance(exc.__cause__, asyncpg.PostgresError)):
            exc = exc.__cause__
        else:
            return exc


def connection_unusable(exc: BaseException) -> bool:
    """After these, a connection may be dead or mid-protocol: never give it back to the pool.

    Seen for real: after `pg_terminate_backend`, asyncpg returned the dead connection to the pool
    and the next query failed with InternalClientError ("another operation is in progress").
    A timed-out connection may still have a statement (and asyncpg's cancel request) in flight.
    A statement cancelled by the server (57014) or a plain SQL error leaves it healthy.
    """
    if isinstance(exc, asyncpg.PostgresError):
        code = sqlstate_of(exc) or ""
        return code.startswith("08") or code in _CONNECTION_ENDING or code == "57P03"
    return isinstance(exc, (asyncpg.InterfaceError, asyncpg.InternalClientError, OSError,
                            asyncio.TimeoutError, asyncio.CancelledError))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if len(text) > 240:
        text = text[:237] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _client_side(exc: BaseException) -> bool:
    return (isinstance(exc, (asyncpg.InterfaceError, asyncpg.InternalClientError))
            and not isinstance(exc, asyncpg.PostgresError))


def _what(exc: BaseException, code: str | None, connection_lost: bool) -> tuple[str, bool]:
    """(what happened, retryable) for a non-timeout error."""
    if code is not None:
        if code in _RETRYABLE_CODES:
            return _RETRYABLE_CODES[code], True
        if code[:2] in _RETRYABLE_CLASSES:
            return {"08": "the connection to PostgreSQL failed",
                    "53": "PostgreSQL is out of resources",
                    "58": "PostgreSQL hit a system error"}[code[:2]], True
        if code in _PERMANENT:
            return _PERMANENT[code][0], False
        if code[:2] == "28":
            return _PERMANENT["28000"][0], False
        return f"PostgreSQL rejected the statement (SQLSTATE {code})", False
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "the server's TLS certificate was not accepted", False
    if isinstance(exc, asyncpg.ClientConfigurationError | ValueError):
        return "the connection settings are invalid", False
    if isinstance(exc, ConnectionRefusedError):
        return "PostgreSQL refused the connection", True
    if isinstance(exc, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "the connection to PostgreSQL was reset", True
    if isinstance(exc, socket.gaierror):
        return "the PostgreSQL host name did not resolve", True
    if isinstance(exc, OSError):
        return "a network error cut the connection to PostgreSQL", True
    if isinstance(exc, asyncpg.InterfaceError) and str(exc).startswith("pool is clos"):
        return "the store is closed", False
    if _client_side(exc) and (connection_lost or any(
            text in str(exc) for text in _LOST_CONNECTION_TEXTS)):
        return "the connection to PostgreSQL was lost", True
    if isinstance(exc, asyncpg.InternalClientError):
        return "the client connection was left in an unexpected state", True
    return "the database client failed", False


def _permanent_hint(exc: BaseException, code: str | None) -> str:
    if code in _PERMANENT:
        return _PERMANENT[code][1]
    if code is not None and code[:2] == "28":
        return _PERMANENT["28000"][1]
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "check sslmode and the server certificate's chain and host name"
    if isinstance(exc, asyncpg.ClientConfigurationError | ValueError):
        return "fix the DSN or connection options"
    if isinstance(exc, asyncpg.InterfaceError) and str(exc).startswith("pool is clos"):
        return "open the store again: a closed store serves no operations"
    return ("fix what PostgreSQL reports; repeating the operation unchanged fails the same way "
            "and nothing was applied")


def _outcome_text(outcome: str, sent: bool) -> str:
    if outcome == "unknown":
        return ("the write was sent before the connection was lost, so it may have been "
                "applied; repeating the same write is safe")
    if sent:
        return "the operation did not complete: PostgreSQL rolled it back"
    return "the operation did not complete and changed nothing"


def classify(exc: BaseException, *, operation: str, company_id: str | None, sent: bool,
             waited_s: float | None = None, waiting_for: str | None = None,
             note: str | None = None, backend_pid: int | None = None,
             connection_lost: bool = False) -> StoreError:
    """The `StoreError` for `exc` raised by `operation` (see the module docstring).

    `sent`: a statement that could commit (a single write statement, or COMMIT) reached the
    socket; always False for reads. `waited_s`: how long the operation ran. `waiting_for`: what
    a timeout was waiting for ("a connection", "PostgreSQL's answer"). `note`: added to the hint
    (what the caller knows is durable anyway, e.g. a cleanup's committed batches).
    `backend_pid`: the server process of the connection used (kept on the error).
    `connection_lost`: the caller knows the connection died under it (a client-side asyncpg
    error then means "lost connection", whatever its wording).
    """
    cause = root_cause(exc)
    code = sqlstate_of(cause)
    who = f" for company {company_id!r}" if company_id is not None else ""
    if isinstance(cause, asyncio.TimeoutError) and code is None:
        outcome = "unknown" if sent else "failed"
        waited = f" after {waited_s:.2f} s" if waited_s is not None else ""
        what = f"timed out{waited} waiting for {waiting_for or 'PostgreSQL'}"
        hint = (f"PostgreSQL is unreachable or overloaded (no answer in time); "
                f"{_outcome_text(outcome, sent)}. Retry later")
        error: StoreError = StoreTimeout(
            f"{operation}{who} {what}", hint=_with_note(hint, note), operation=operation,
            company_id=company_id, outcome=outcome, waited_s=waited_s, backend_pid=backend_pid)
        return error
    what, retryable = _what(cause, code, connection_lost)
    message = f"{operation}{who} failed: {what} ({_short(cause)})"
    if not retryable:
        return StoreRejected(message, hint=_with_note(_permanent_hint(cause, code), note),
                             operation=operation, company_id=company_id, outcome="failed",
                             waited_s=waited_s, sqlstate=code, backend_pid=backend_pid)
    server_answered = (isinstance(cause, asyncpg.PostgresError) and not code.startswith("08")
                       and code not in _CONNECTION_ENDING) if code else False
    outcome = "unknown" if sent and not server_answered else "failed"
    hint = f"{what}; {_outcome_text(outcome, sent)}. Retry later"
    return StoreUnavailable(message, hint=_with_note(hint, note), operation=operation,
                            company_id=company_id, outcome=outcome, waited_s=waited_s,
                            sqlstate=code, backend_pid=backend_pid)


def _with_note(hint: str, note: str | None) -> str:
    return f"{hint}. {note}" if note else hint
