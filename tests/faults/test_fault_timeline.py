"""FaultTimeline: windows, queries by time, JSON round trip and schema version."""

from __future__ import annotations

import json

import pytest

from harness.metrics.fault_timeline import FaultTimeline, FaultWindow, Instant


def test_windows_open_close_and_query() -> None:
    timeline = FaultTimeline()
    a = timeline.open("sever", "pg", {}, at=Instant(10.0, 1000.0))
    b = timeline.open("latency", "pg", {"latency_ms": 50}, at=Instant(12.0, 1002.0))
    timeline.close(a, at=Instant(11.5, 1001.5))
    assert a.duration == 1.5 and not a.active
    assert b.active and b.duration is None
    assert timeline.active() == [b]
    assert timeline.at(11.0) == [a]
    assert timeline.at(13.0) == [b]
    assert timeline.at(9.0) == []
    timeline.close(a, at=Instant(99.0, 99.0))  # closing twice keeps the first time
    assert a.cleared_at == Instant(11.5, 1001.5)
    assert len(timeline) == 2 and list(timeline) == [a, b]


def test_json_round_trip(tmp_path) -> None:  # type: ignore[no-untyped-def]
    timeline = FaultTimeline()
    window = timeline.open("blackhole", "pg-1", {"toxics": ["x"]})
    timeline.close(window)
    timeline.open("flap", "pg-1", {"cycle": 1})
    data = json.loads(timeline.to_json())
    assert data["schema_version"] == 1
    assert data["windows"][0]["kind"] == "blackhole"
    assert data["windows"][0]["duration"] >= 0
    assert data["windows"][1]["cleared_at"] is None
    again = FaultTimeline.from_json(timeline.to_json())
    assert [w.to_dict() for w in again] == [w.to_dict() for w in timeline]
    path = timeline.write_json(tmp_path / "faults.json")
    assert FaultTimeline.from_json(path.read_text()).windows[0] == FaultWindow.from_dict(
        data["windows"][0])


def test_unknown_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="schema_version"):
        FaultTimeline.from_dict({"schema_version": 99, "windows": []})
