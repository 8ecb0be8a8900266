"""Run by tests/test_targets.py in a pytest subprocess (not collected by the main run: the name
does not start with test_). The test fails on purpose after using the target."""

from __future__ import annotations


async def test_fails_after_using_the_target(target) -> None:
    state = await target.load("acme")
    await state.keys.set({"session": {"1.0": {"v": 1}}})
    assert await state.keys.get("session", ["1.0"]) == {"1.0": {"v": 1}}
    raise AssertionError("deliberate failure: the fixture must still close the target")
