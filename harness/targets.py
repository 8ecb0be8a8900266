"""Targets: the auth-state implementations the suites can run against.

Scenarios never import a store: they receive a *target* opened on a DSN (often one that goes
through the fault proxy). Anything with this surface can be tested, e.g. a later bridge to a
Node.js store. The reference store is the default.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from harness.errors import ConfigError


class KeyStoreLike(Protocol):
    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]: ...
    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None: ...


class AuthStateLike(Protocol):
    creds: dict[str, Any]
    keys: KeyStoreLike

    async def save_creds(self) -> None: ...


class AuthStateTarget(Protocol):
    """An open store: loads per-company auth state; closed once at the end."""

    async def load(self, company_id: str) -> AuthStateLike: ...
    async def close(self) -> None: ...


@dataclass(frozen=True)
class TargetSpec:
    name: str
    description: str
    open: Callable[..., Awaitable[AuthStateTarget]]  # open(dsn, **options)


def _open_reference(dsn: str, **options: Any) -> Awaitable[AuthStateTarget]:
    from harness.authstate.store import PostgresAuthStore

    return PostgresAuthStore.open(dsn, **options)


TARGETS: dict[str, TargetSpec] = {
    "reference": TargetSpec("reference", "the Python/asyncpg reference store shipped here",
                            _open_reference),
}


def get_target(name: str) -> TargetSpec:
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown target {name!r}",
                          hint=f"choose one of: {', '.join(sorted(TARGETS))}") from None
