"""The calibration wrapper target slows the store the way each knob says, and is transparent
without knobs (so A and B runs differ only by the knob)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from harness.calibration.knobs import Knobs, parse
from harness.calibration.slowed import SlowedStore
from harness.errors import ConfigError

CALL_S = 0.02


class FakeKeys:
    async def get(self, key_type: str, ids: Any) -> dict[str, Any]:
        await asyncio.sleep(CALL_S)
        return {i: {"v": 1} for i in ids}

    async def set(self, data: Any) -> None:
        await asyncio.sleep(CALL_S)


class FakeState:
    def __init__(self) -> None:
        self.creds: dict[str, Any] = {"me": 1}
        self.keys = FakeKeys()

    async def save_creds(self) -> None:
        await asyncio.sleep(CALL_S)


class FakeStore:
    def __init__(self) -> None:
        self.mode = "normal"
        self.closed = False

    async def load(self, company_id: str) -> FakeState:
        return FakeState()

    def status(self) -> dict[str, Any]:
        return {"mode": self.mode, "journal": {"recovered_at_open": 0}}

    async def flush(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109
        await asyncio.sleep(CALL_S)
        return True

    async def close(self) -> None:
        self.closed = True

    def companies(self) -> list[str]:
        return ["a"]


async def _timed(call: Any) -> float:
    started = time.monotonic()
    await call
    return time.monotonic() - started


async def test_without_knobs_the_wrapper_only_delegates() -> None:
    inner = FakeStore()
    store = SlowedStore(inner, Knobs())
    state = await store.load("a")
    assert await state.keys.get("pre-key", ["1"]) == {"1": {"v": 1}}
    assert state.creds == {"me": 1} and store.companies() == ["a"]
    assert await _timed(state.keys.set({"pre-key": {"1": None}})) < CALL_S * 1.9
    await store.close()
    assert inner.closed


async def test_p99_knob_makes_every_call_take_that_many_times_as_long() -> None:
    state = await SlowedStore(FakeStore(), Knobs(p99=2.0)).load("a")
    assert await _timed(state.keys.get("session", ["x"])) >= CALL_S * 1.9


async def test_rto_knob_holds_writes_until_that_long_after_the_store_was_degraded() -> None:
    inner = FakeStore()
    state = await SlowedStore(inner, Knobs(rto=0.3)).load("a")
    inner.mode = "degraded"
    assert await _timed(state.keys.set({"pre-key": {"1": None}})) < 0.2  # not while degraded
    inner.mode = "normal"
    held = await _timed(state.save_creds())
    assert held >= 0.25  # the first write after recovery waited
    assert await _timed(state.keys.get("pre-key", ["1"])) < 0.2  # reads are not held
    await asyncio.sleep(0.35)
    assert await _timed(state.save_creds()) < 0.2  # long after recovery: no wait


async def test_replay_knob_stretches_the_first_flush_after_an_open_with_a_journal() -> None:
    store = SlowedStore(FakeStore(), Knobs(replay=2.0))
    store._slow.replaying_since = time.monotonic()
    first = await _timed(store.flush(timeout=5))
    assert first >= CALL_S * 1.9
    assert await _timed(store.flush(timeout=5)) < CALL_S * 1.9  # only the replay is slower


def test_knobs_parse_and_refuse_what_they_do_not_know() -> None:
    assert parse("replay=1.3, rto=0.5,p99=2") == Knobs(1.3, 0.5, 2.0)
    assert parse("") == Knobs() and not parse(None).active
    assert parse("rto=0.5").to_env() == "rto=0.5"
    for bad in ("replay=0.5", "speed=2", "rto", "p99=x"):
        with pytest.raises(ConfigError):
            parse(bad)
