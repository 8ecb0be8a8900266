"""The reference auth-state store and its parts (codec, creds, schema, maintenance)."""

from harness.authstate.errors import (
    AuthStateError,
    InvalidCompanyId,
    InvalidKey,
    StoreUnavailable,
    UnsupportedValue,
)
from harness.authstate.store import AuthState, PostgresAuthStore, SignalKeyStore

__all__ = [
    "AuthState",
    "AuthStateError",
    "InvalidCompanyId",
    "InvalidKey",
    "PostgresAuthStore",
    "SignalKeyStore",
    "StoreUnavailable",
    "UnsupportedValue",
]
