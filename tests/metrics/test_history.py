"""History: recording rules, JSON-lines round trip, torn tail after kill -9, threads, merge."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.metrics.history import (
    CREDS,
    ERROR_MAX_CHARS,
    History,
    HistoryFormatError,
    digest,
    error_text,
)

A = ("session", "a")
B = ("session", "b")


class FakeUnavailable(Exception):
    def __init__(self, message: str, outcome: str) -> None:
        super().__init__(message)
        self.outcome = outcome


def test_an_op_is_an_invoke_and_exactly_one_completion() -> None:
    h = History()
    write = h.invoke(1, "acme", "write-keys", [A, B], {A: "d1", B: None}, meta={"batch": 2})
    write.ok(source="journal")
    read = h.invoke(1, "acme", "read-keys", [A, B])
    read.ok({A: "d1"}, "cache")
    (w, r) = h.ops()
    assert w.value == {A: "d1", B: None} and w.outcome == "ok" and w.source == "journal"
    assert w.meta == {"batch": 2} and w.is_write and not w.is_read
    assert r.result == {A: "d1", B: None}  # asked for, not returned: absent
    assert r.index == 2 and r.complete_index == 3 and r.latency_ns >= 0
    assert [e["type"] for e in h.events()] == ["invoke", "ok", "invoke", "ok"]
    with pytest.raises(RuntimeError, match="already completed"):
        read.fail("late")


def test_recording_rules_reject_misuse() -> None:
    h = History()
    with pytest.raises(ValueError, match="unknown op"):
        h.invoke(1, "acme", "write-key", [A], {A: "d"})
    with pytest.raises(ValueError, match="needs value"):
        h.invoke(1, "acme", "write-keys", [A])
    with pytest.raises(ValueError, match="exactly once"):
        h.invoke(1, "acme", "write-keys", [A, B], {A: "d"})
    with pytest.raises(ValueError, match="CREDS"):
        h.invoke(1, "acme", "read-creds", [A])
    with pytest.raises(TypeError, match="digest"):
        h.invoke(1, "acme", "write-keys", [A], {A: b"raw key material"})  # type: ignore[dict-item]
    op = h.invoke(1, "acme", "write-keys", [A], {A: "d"}, at_ns=100)
    with pytest.raises(ValueError, match="in flight"):
        h.invoke(1, "acme", "read-keys", [A])
    with pytest.raises(ValueError, match="before its invoke"):
        op.ok(at_ns=99)
    with pytest.raises(ValueError, match="only reads"):
        op.ok({A: "d"})
    op.info("StoreTimeout: 2 s")
    h.invoke(1, "acme", "read-creds", [CREDS]).ok({CREDS: "c"})  # the process is free again


def test_raised_maps_store_outcome_to_fail_or_info_with_a_short_text() -> None:
    h = History()
    assert h.invoke(1, "acme", "write-keys", [A], {A: "d"}).raised(
        FakeUnavailable("connection refused", "failed")) == "fail"
    assert h.invoke(2, "acme", "write-keys", [A], {A: "e"}).raised(
        FakeUnavailable("connection lost mid-commit", "unknown")) == "info"
    assert h.invoke(3, "acme", "read-keys", [A]).raised(TimeoutError()) == "info"
    fail, info, timeout = h.ops()
    assert fail.outcome == "fail" and fail.error == "FakeUnavailable: connection refused"
    assert info.outcome == "info" and timeout.error == "TimeoutError"
    assert len(error_text(ValueError("x" * 1000))) == ERROR_MAX_CHARS


def test_digest_is_stable_across_encodings() -> None:
    assert digest({"b": 1, "a": [1, 2]}) == digest({"a": [1, 2], "b": 1})
    assert digest("text") == digest(b"text") and len(digest("text")) == 16
    assert digest({"k": b"\x01"}) != digest({"k": b"\x02"})


def test_nemesis_events_share_index_and_make_windows() -> None:
    h = History()
    h.nemesis("sever", "start", at_ns=10, proxy="pg")
    h.invoke(1, "acme", "read-keys", [A], at_ns=11).fail("refused", at_ns=12)
    h.nemesis("sever", "stop", at_ns=20)
    h.nemesis("blackhole", "start", at_ns=30)
    assert h.fault_windows() == [("sever", 10, 20), ("blackhole", 30, None)]
    assert h.nemesis_events()[0].params == {"proxy": "pg"}
    assert [e["index"] for e in h.events()] == [0, 1, 2, 3, 4]
    assert h.span_ns() == (10, 30)
    with pytest.raises(ValueError, match="start"):
        h.nemesis("sever", "begin")  # type: ignore[arg-type]


def _sample_history(h: History) -> None:
    h.nemesis("sever", "start", target="pg")
    h.invoke(1, "acme", "write-keys", [A, B], {A: "d1", B: None}).ok(source="journal")
    h.invoke(1, "acme", "read-keys", [A]).ok({A: "d1"}, "cache", meta={"note": "x"})
    h.invoke(2, "acme", "write-creds", [CREDS], {CREDS: "c1"}).info("StoreTimeout: 2 s")
    h.invoke(3, "acme", "read-creds", [CREDS]).ok({CREDS: "c0"}, meta={"fresh": True})
    h.nemesis("sever", "stop")
    h.invoke(4, "acme", "write-keys", [A], {A: "d2"})  # never completed


def test_sink_and_write_jsonl_round_trip(tmp_path: Path) -> None:
    sink = tmp_path / "history.jsonl"
    with History(sink=sink) as h:
        _sample_history(h)
    for path in (sink, h.write_jsonl(tmp_path / "copy.jsonl")):
        again = History.read_jsonl(path)
        assert again.events() == h.events() and again.ops() == h.ops()
        assert again.fault_windows() == h.fault_windows() and again.torn_tail is None
        assert again.header["schema_version"] == 1
    lines = sink.read_text().splitlines()
    assert json.loads(lines[0])["type"] == "header" and len(lines) == len(h) + 1
    pending = History.read_jsonl(sink).ops()[-1]
    assert pending.outcome is None and pending.indeterminate


def test_sink_refuses_a_file_that_already_holds_a_history(tmp_path: Path) -> None:
    sink = tmp_path / "h.jsonl"
    History(sink=sink).close()
    with pytest.raises(FileExistsError, match="own file"):
        History(sink=sink)


def test_torn_last_line_is_dropped_and_reported(tmp_path: Path) -> None:
    sink = tmp_path / "h.jsonl"
    with History(sink=sink) as h:
        _sample_history(h)
    with open(sink, "ab") as out:
        out.write(b'{"type":"invoke","process":9,"comp')
    again = History.read_jsonl(sink)
    assert again.events() == h.events()
    assert again.torn_tail is not None and "dropped" in again.torn_tail


def test_damage_in_the_middle_is_an_error(tmp_path: Path) -> None:
    sink = tmp_path / "h.jsonl"
    with History(sink=sink) as h:
        _sample_history(h)
    lines = sink.read_bytes().split(b"\n")
    lines[3] = b"garbage"
    sink.write_bytes(b"\n".join(lines))
    with pytest.raises(HistoryFormatError, match="line 4"):
        History.read_jsonl(sink)


CHILD = """
import sys
from harness.metrics.history import History
h = History(sink=sys.argv[1])
i = 0
while True:
    op = h.invoke(1, "acme", "write-keys", [("session", "a")], {("session", "a"): f"d{i}"})
    op.ok(source="db")
    i += 1
"""


def test_history_of_a_process_killed_with_sigkill_is_readable(tmp_path: Path) -> None:
    sink = tmp_path / "child.jsonl"
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(sink)],
                             cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 30
        while (not sink.exists() or sink.stat().st_size < 200_000) and child.poll() is None:
            assert time.monotonic() < deadline, "the child recorded too little"
            time.sleep(0.02)
        assert child.poll() is None, "the child exited on its own"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    history = History.read_jsonl(sink)
    ops = history.ops()
    assert len(ops) > 500
    assert all(op.outcome == "ok" for op in ops[:-1])
    assert ops[-1].outcome in ("ok", None)  # killed between invoke and completion, perhaps
    assert [op.value for op in ops[:3]] == [{A: "d0"}, {A: "d1"}, {A: "d2"}]


def test_concurrent_recording_keeps_one_contiguous_index(tmp_path: Path) -> None:
    sink = tmp_path / "threads.jsonl"
    h = History(sink=sink)
    per_thread = 1500

    def worker(process: int) -> None:
        for i in range(per_thread):
            op = h.invoke(process, "acme", "write-keys", [A], {A: f"{process}-{i}"})
            op.ok(source="db")

    threads = [threading.Thread(target=worker, args=(p,)) for p in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    h.close()
    events = h.events()
    assert [e["index"] for e in events] == list(range(8 * per_thread * 2))
    assert len(h.ops()) == 8 * per_thread and all(op.outcome == "ok" for op in h.ops())
    assert History.read_jsonl(sink).events() == events


def test_merge_reindexes_by_time_and_refuses_shared_processes() -> None:
    parent, child = History(), History()
    parent.nemesis("client-crash", "start", at_ns=50)
    child.invoke(10, "acme", "write-keys", [A], {A: "d1"}, at_ns=10).ok(at_ns=20)
    child.invoke(10, "acme", "write-keys", [A], {A: "d2"}, at_ns=40)  # killed in flight
    parent.invoke(1, "acme", "read-keys", [A], at_ns=60).ok({A: "d2"}, at_ns=70)
    merged = History.merge(parent, child)
    assert [e["time"] for e in merged.events()] == [10, 20, 40, 50, 60, 70]
    ops = merged.ops()
    assert [(op.index, op.process, op.outcome) for op in ops] == [(0, 10, "ok"),
                                                                  (2, 10, None), (4, 1, "ok")]
    assert ops[0].complete_index == 1
    other = History()
    other.invoke(1, "acme", "read-keys", [A]).ok({})
    with pytest.raises(ValueError, match="process id 1"):
        History.merge(parent, other)
