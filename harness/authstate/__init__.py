"""The reference store and its parts (codec, creds, schema, error model, maintenance)."""

from harness.authstate.errors import (
    AuthStateError,
    InvalidCompanyId,
    InvalidKey,
    StoreError,
    StoreRejected,
    StoreTimeout,
    StoreUnavailable,
    UnsupportedValue,
)
from harness.authstate.resilient import ResilientAuthStore
from harness.authstate.state import AuthState, SignalKeyStore
from harness.authstate.store import PostgresAuthStore, PreparedKeyWrite, TcpKeepalive

__all__ = [
    "AuthState",
    "AuthStateError",
    "InvalidCompanyId",
    "InvalidKey",
    "PostgresAuthStore",
    "PreparedKeyWrite",
    "ResilientAuthStore",
    "SignalKeyStore",
    "StoreError",
    "StoreRejected",
    "StoreTimeout",
    "StoreUnavailable",
    "TcpKeepalive",
    "UnsupportedValue",
]
