"""`--fault NAME@STARTs+DURs`: parsed, and refused with a hint when it cannot work."""

from __future__ import annotations

import pytest

from harness.errors import ConfigError
from harness.load.faults import LOAD_FAULTS, parse_fault
from harness.load.settings import phase_of


def test_parses_the_documented_form() -> None:
    plan = parse_fault("sever@20s+10s", 60)
    assert (plan.name, plan.start_s, plan.duration_s, plan.end_s) == ("sever", 20, 10, 30)
    assert plan.spec == "sever@20s+10s"
    assert parse_fault("blackhole@5+2.5").duration_s == 2.5


@pytest.mark.parametrize(("text", "fragment"), [
    ("sever", "NAME@STARTs+DURATIONs"),
    ("nosuch@1s+1s", "not a chaos scenario"),
    ("pg-kill@1s+1s", "not available under load"),
    ("sever@50s+20s", "not before the run ends"),
])
def test_refuses_what_cannot_run(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_fault(text, 60)
    assert fragment in info.value.message and info.value.hint


def test_every_load_fault_is_a_chaos_scenario() -> None:
    from harness.chaos.catalog import SCENARIOS

    assert set(LOAD_FAULTS) <= set(SCENARIOS)


def test_phases_around_the_window() -> None:
    window = (20.0, 30.0)
    assert phase_of(5.0, None) == "steady"
    assert [phase_of(t, window) for t in (19.9, 20.0, 29.9, 30.0, 34.9, 35.0)] == [
        "before", "during", "during", "recovery", "recovery", "after"]
