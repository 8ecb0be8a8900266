"""The calibration wrapper target: a store (the resilient one by default) made slower by knobs.

    --target harness.calibration.slowed:open_store

With HARNESS_CALIBRATION_SLOWDOWN unset it only delegates, so A runs (knobs off) and B runs
(knobs on) measure the same code but for the knob. The knobs act the way a real regression
would show up to the harness -- a slower replay, a later recovery, slower calls -- and never
touch what the harness records: the judge still sees only what callers and PostgreSQL see.
AUTHSTATE_CALIBRATION_INNER names the wrapped target (default resilient).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from harness.calibration.knobs import Knobs, from_env

INNER_ENV = "AUTHSTATE_CALIBRATION_INNER"
T = TypeVar("T")


class _Slowdown:
    """The knobs' effect, shared by a store and the states it loads."""

    def __init__(self, inner: Any, knobs: Knobs) -> None:
        self.inner, self.knobs = inner, knobs
        self.degraded_at: float | None = None
        self.replaying_since: float | None = None

    def _mode(self) -> str | None:
        status = getattr(self.inner, "status", None)
        if not callable(status):
            return None
        try:
            return str(status().get("mode"))
        except Exception:
            return None

    async def hold_write(self) -> None:
        """rto knob: a write waits until `rto` s after the store was last seen degraded."""
        if not self.knobs.rto:
            return
        now = time.monotonic()
        if self._mode() not in (None, "normal"):
            self.degraded_at = now
            return
        if self.degraded_at is not None and now < self.degraded_at + self.knobs.rto:
            await asyncio.sleep(self.degraded_at + self.knobs.rto - now)

    async def call(self, make: Callable[[], Awaitable[T]], *, write: bool = False) -> T:
        if write:
            await self.hold_write()
        started = time.monotonic()
        result = await make()
        if self.knobs.p99 > 1.0:
            await asyncio.sleep((time.monotonic() - started) * (self.knobs.p99 - 1.0))
        return result


class SlowedKeys:
    def __init__(self, inner: Any, slow: _Slowdown) -> None:
        self._inner, self._slow = inner, slow

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        return await self._slow.call(lambda: self._inner.get(key_type, ids))

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        await self._slow.call(lambda: self._inner.set(data), write=True)

    def __getattr__(self, name: str) -> Any:  # keys.clear and other optional hooks
        return getattr(self._inner, name)


class SlowedState:
    def __init__(self, inner: Any, slow: _Slowdown) -> None:
        self._inner, self._slow = inner, slow
        self.keys = SlowedKeys(inner.keys, slow)

    @property
    def creds(self) -> dict[str, Any]:
        return self._inner.creds  # type: ignore[no-any-return]

    @creds.setter
    def creds(self, value: dict[str, Any]) -> None:
        self._inner.creds = value

    async def save_creds(self) -> None:
        await self._slow.call(self._inner.save_creds, write=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class SlowedStore:
    """Delegates every hook to the wrapped store; `load`, the key calls, `save_creds` and
    `flush` carry the knobs' slowdown."""

    def __init__(self, inner: Any, knobs: Knobs) -> None:
        self._inner = inner
        self._slow = _Slowdown(inner, knobs)

    @property
    def knobs(self) -> Knobs:
        return self._slow.knobs

    async def load(self, company_id: str) -> SlowedState:
        state = await self._slow.call(lambda: self._inner.load(company_id))
        return SlowedState(state, self._slow)

    async def flush(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109 - the targets API
        """replay knob: the first flush after an open that found a journal returns only once
        `replay` x the time since the open has passed (the replay looks that much slower)."""
        flush = getattr(self._inner, "flush", None)
        done = bool(await flush(timeout=timeout)) if callable(flush) else True
        since, self._slow.replaying_since = self._slow.replaying_since, None
        if since is not None and self.knobs.replay > 1.0:
            await asyncio.sleep((time.monotonic() - since) * (self.knobs.replay - 1.0))
        return done

    async def close(self) -> None:
        await self._inner.close()

    def __getattr__(self, name: str) -> Any:  # status, last_source, snapshot, companies ...
        return getattr(self._inner, name)


async def open_store(dsn: str, *, cache_dir: Path) -> SlowedStore:
    """The factory: `--target harness.calibration.slowed:open_store`."""
    from harness.targets import resolve_target

    inner = await resolve_target(os.environ.get(INNER_ENV) or "resilient").open(
        dsn, cache_dir=cache_dir)
    store = SlowedStore(inner, from_env())
    status = getattr(inner, "status", None)
    if callable(status) and store.knobs.replay > 1.0:
        try:
            found = (status().get("journal") or {}).get("recovered_at_open")
        except Exception:
            found = None
        if found:
            store._slow.replaying_since = time.monotonic()
    return store
