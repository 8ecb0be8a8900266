"""Errors of the auth-state store. Each says what went wrong and what to do.

Database failures are `StoreError`s that a caller (the resilient store, the chaos checker) can
act on without parsing text:

- `outcome`: "failed" = the operation definitely did not take effect; "unknown" = a write was
  sent and then the connection was lost or timed out, so it may have committed. Reads are always
  "failed" (a read changes nothing).
- `retryable`: True for `StoreUnavailable` (PostgreSQL unreachable, overloaded, restarting,
  read-only, a timeout): the same call can succeed later. False for `StoreRejected`
  (permissions, missing table, bad credentials...): repeating it fails until someone fixes the
  cause, which its hint names.
- `backend_pid`: the server process (`pg_backend_pid()`) of the connection the operation used,
  when it had one. After an "unknown" outcome that backend may still hold the write (bytes
  still in the network, a statement still running) and commit it later; a caller that will
  write the same rows again can terminate it first (the resilient store's fence).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from harness.errors import HarnessError

Outcome = Literal["failed", "unknown"]


class AuthStateError(HarnessError):
    """Base class for auth-state store errors. Raised by a store under test they report what
    the store did (a refusal, a database error on its path), never a failure of the harness."""

    from_target: ClassVar[bool] = True


class InvalidCompanyId(AuthStateError, ValueError):
    """A company id outside `[A-Za-z0-9_-]{1,50}`: rejected, never sanitized; nothing written."""


class InvalidKey(AuthStateError, ValueError):
    """A key type or key id the store cannot accept."""


class UnsupportedValue(AuthStateError, ValueError):
    """A value that cannot be stored faithfully (not JSON + bytes, NUL, lone surrogates)."""


class StoreError(AuthStateError):
    """A database operation did not complete (see the module docstring for `outcome` and
    `retryable`). `waited_s` is how long the operation ran before it gave up (always set for
    timeouts); `sqlstate` is PostgreSQL's error code when the server sent one; `backend_pid`
    the server process of the connection used, when known."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, hint: str | None = None, operation: str = "",
                 company_id: str | None = None, outcome: Outcome = "failed",
                 waited_s: float | None = None, sqlstate: str | None = None,
                 backend_pid: int | None = None) -> None:
        super().__init__(message, hint=hint)
        if outcome not in ("failed", "unknown"):
            raise ValueError(f"outcome must be 'failed' or 'unknown', not {outcome!r}")
        self.operation = operation
        self.company_id = company_id
        self.outcome: Outcome = outcome
        self.waited_s = waited_s
        self.sqlstate = sqlstate
        self.backend_pid = backend_pid


class StoreUnavailable(StoreError):
    """PostgreSQL could not serve the operation now (refused, reset or lost connection, shutdown,
    crash recovery, too many connections, read-only, serialization failure, timeout): retryable.

    Loading creds raises this rather than returning fresh creds: treating an error as "no creds"
    would overwrite a paired account with a new identity (forced logout).
    """

    retryable: ClassVar[bool] = True


class StoreTimeout(StoreUnavailable):
    """No connection or no answer within the operation deadline (or the connect timeout);
    `waited_s` says how long it waited."""


class StoreRejected(StoreError):
    """PostgreSQL refused the operation for a reason that will not go away by itself (missing
    privilege, table or column, bad credentials, unknown database, any other SQL error): not
    retryable; the hint says what to fix."""
