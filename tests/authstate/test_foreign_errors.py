"""A foreign Python store's errors, judged by what they carry (harness/authstate/
foreign_errors.py): the chaos driver records a refusal as `fail` (nothing written) and an
outage as `info` (it may have committed), without the store translating anything."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from harness.authstate.errors import StoreRejected, StoreUnavailable
from harness.authstate.foreign_errors import error_kind, sqlstate_kind, write_outcome
from harness.metrics.history import History
from harness.target_driver import Driver
from harness.targets import resolve_target

TARGETS = Path(__file__).resolve().parents[1] / "observe" / "observe_targets.py"
DRIVER_ERRORS = f"{TARGETS}:driver_errors"


class _Psycopg(Exception):
    """What psycopg (3) raises: the SQLSTATE in `sqlstate`."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"psycopg error {sqlstate}")
        self.sqlstate = sqlstate


@pytest.mark.parametrize(("code", "kind"), [
    ("22P05", "refusal"), ("22001", "refusal"), ("23505", "refusal"), ("08006", "outage"),
    ("57P01", "outage"), ("53300", "outage"), ("40001", "outage"), ("42P01", None),
    ("", None), (None, None)])
def test_sqlstate_kinds(code: str | None, kind: str | None) -> None:
    assert sqlstate_kind(code) == kind


@pytest.mark.parametrize(("exc", "kind", "outcome"), [
    (TypeError("company id must be a string"), "refusal", "failed"),
    (ValueError("NUL in a value"), "refusal", "failed"),
    (_Psycopg("22P05"), "refusal", "failed"),
    (_Psycopg("08006"), "outage", "unknown"),
    (ConnectionResetError(104, "reset"), "outage", "unknown"),
    (TimeoutError(), "outage", "unknown"),
    (RuntimeError("bug"), "error", "unknown"),
    (StoreUnavailable("down", outcome="failed"), "outage", "failed"),  # our model's word wins
    (StoreRejected("no", sqlstate="42501"), "error", "failed"),
])
def test_error_kinds_and_write_outcomes(exc: BaseException, kind: str, outcome: str) -> None:
    assert error_kind(exc) == kind
    assert write_outcome(exc) == outcome


async def test_the_chaos_driver_records_asyncpg_refusals_as_failed(pg_dsn: str,
                                                                  tmp_path: Path) -> None:
    """asyncpg's 22P05 out of keys.set: `fail`; a reset connection: `info`."""
    target = await resolve_target(DRIVER_ERRORS).open(pg_dsn, cache_dir=tmp_path)
    driver = Driver(target, History())
    state = await target.load("acme")
    with pytest.raises(asyncpg.UntranslatableCharacterError):
        await state.keys.set({"session": {"a.0": {"note": "a\x00b"}}})
    assert await driver.set(0, "acme", state, {"session": {"a.0": {"note": "a\x00b"}}}) == "fail"
    reset = await target.load("reset")
    assert await driver.set(1, "reset", reset, {"session": {"a.0": {"ok": 1}}}) == "info"
    assert driver.stats.errors["UntranslatableCharacterError"] == 1
