"""Errors of the auth-state store. Each says what went wrong and what to do."""

from __future__ import annotations

from harness.errors import HarnessError


class AuthStateError(HarnessError):
    """Base class for auth-state store errors."""


class InvalidCompanyId(AuthStateError, ValueError):
    """A company id outside `[A-Za-z0-9_-]{1,50}`: rejected, never sanitized; nothing written."""


class InvalidKey(AuthStateError, ValueError):
    """A key type or key id the store cannot accept."""


class UnsupportedValue(AuthStateError, ValueError):
    """A value that cannot be stored faithfully (not JSON + bytes, NUL, lone surrogates)."""


class StoreUnavailable(AuthStateError):
    """PostgreSQL failed or could not be reached; the operation did not complete.

    Loading creds raises this rather than returning fresh creds: treating an error as "no creds"
    would overwrite a paired account with a new identity (forced logout).
    """
