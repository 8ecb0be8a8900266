"""results.json: figures and sections round-trip, every record rewrites the whole file
atomically (a killed child leaves what it had), items are scrubbed and JSON-clean."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fixtures.results import ResultsRecorder, describe
from harness.config import load_config
from harness.metrics.figures import Figure
from harness.report.results import RESULTS_SCHEMA_VERSION, Results, read_results

ROOT = Path(__file__).resolve().parents[2]
RTO = Figure("chaos", "chaos sever [resilient] rto p95", 0.61, "s", "lower",
             gate="chaos-rto-p95-max-s", notes="10 s outage", context={"samples": 100})


def test_figures_and_sections_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    recorder = ResultsRecorder(path)
    ratio = Figure("bench", "keys.set 812 pre-keys", 0.87, "x", "higher",
                   gate="bench-bulk-min-ratio", context={"ours": 1.0, "baseline": 1.15})
    recorder.figure(RTO)
    recorder.figure(ratio)
    recorder.section("chaos", {"name": "sever", "rto_s": {"p50": 0.3, "p95": 0.61},
                               "anomalies": {}, "timeline": [(0.1, 3)]})
    back = read_results(path)
    assert back.problem is None
    assert back.figures == [RTO, ratio]
    assert back.section("chaos") == [{"name": "sever", "rto_s": {"p50": 0.3, "p95": 0.61},
                                      "anomalies": {}, "timeline": [[0.1, 3]]}]
    assert back.section("load") == []
    assert json.loads(path.read_text())["schema_version"] == RESULTS_SCHEMA_VERSION


def test_every_record_rewrites_the_whole_file_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "run" / "results.json"
    recorder = ResultsRecorder(path)
    assert read_results(path).figures == [] and path.exists()  # written before any record
    seen = []
    for i in range(3):
        recorder.figure(Figure("chaos", f"f{i}", float(i), "s", "lower"))
        recorder.section("chaos", {"n": i})
        doc = read_results(path)
        seen.append((len(doc.figures), len(doc.section("chaos"))))
    assert seen == [(1, 1), (2, 2), (3, 3)]
    assert sorted(p.name for p in path.parent.iterdir()) == ["results.json"]


def test_a_killed_child_leaves_every_record_made_before_the_kill(tmp_path: Path) -> None:
    (tmp_path / "test_killed.py").write_text(textwrap.dedent("""
        import os, signal
        from harness.metrics.figures import Figure

        def test_records_then_dies(record_figure, record_section):
            record_figure(Figure("chaos", "before the kill", 1.0, "s", "lower"))
            record_section("chaos", {"name": "sever", "verdict": "passed"})
            os.kill(os.getpid(), signal.SIGKILL)
    """))
    out = tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "test_killed.py", "-p", "fixtures.results",
         "--results", str(out), "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-q"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=120, check=False)
    assert done.returncode == -9, done.stdout + done.stderr
    back = read_results(out)
    assert [f.name for f in back.figures] == ["before the kill"]
    assert back.section("chaos") == [{"name": "sever", "verdict": "passed"}]


def test_items_are_scrubbed_and_non_finite_numbers_become_null(tmp_path: Path) -> None:
    secret = base64.b64encode(bytes(range(32))).decode()
    path = tmp_path / "results.json"
    recorder = ResultsRecorder(path)
    recorder.section("chaos", {"name": "sever", "error": f"value {secret}",
                               "rto_s": {"max": float("inf")}})
    recorder.figure(Figure("chaos", "never recovered", float("inf"), "s", "lower",
                           gate="chaos-rto-p95-max-s", notes=f"last value {secret}"))
    text = path.read_text()
    assert secret not in text and "Infinity" not in text
    back = read_results(path)
    assert back.section("chaos")[0]["rto_s"] == {"max": None}
    (figure,) = back.figures
    assert figure.value is None and not figure.meets(1.0)  # "not measured": fails its gate


def test_bad_records_are_refused_at_record_time(tmp_path: Path) -> None:
    recorder = ResultsRecorder(tmp_path / "results.json")
    with pytest.raises(TypeError, match="cannot record a set"):
        recorder.section("chaos", {"ids": {"a", "b"}})
    with pytest.raises(TypeError, match="item must be a dict"):
        recorder.section("chaos", ["sever"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown gate 'chaos-rto-p95'"):
        recorder.figure(Figure("chaos", "x", 1.0, "s", "lower", gate="chaos-rto-p95"))
    with pytest.raises(TypeError, match=r"takes a harness\.metrics\.figures\.Figure"):
        recorder.figure({"name": "x"})  # type: ignore[arg-type]
    assert read_results(tmp_path / "results.json").figures == []


def test_without_a_file_figures_stay_in_memory(tmp_path: Path) -> None:
    recorder = ResultsRecorder(None)
    recorder.figure(RTO)
    assert recorder.figures == [RTO]


def test_missing_or_torn_files_read_as_empty_with_the_problem_named(tmp_path: Path) -> None:
    assert read_results(tmp_path / "absent.json") == Results()
    torn = tmp_path / "results.json"
    torn.write_text('{"schema_version": 1, "figures": [')
    assert "unreadable" in (read_results(torn).problem or "")
    torn.write_text(json.dumps({"schema_version": 1, "figures": [
        {"suite": "bench", "name": "ok", "value": 1, "unit": "x", "better": "higher"},
        {"suite": "bench", "name": "bad", "value": 1, "unit": "x", "better": "sideways"}]}))
    back = read_results(torn)
    assert [f.name for f in back.figures] == ["ok"] and "bad" in (back.problem or "")


def test_terminal_line_names_value_bound_and_verdict() -> None:
    config = load_config(Path("/nonexistent"))
    assert describe(RTO, config) == ("chaos sever [resilient] rto p95: 0.61 s "
                                     "(chaos-rto-p95-max-s <= 1.5) met")
    ratio = Figure("bench", "bulk", 0.7, "x", "higher", gate="bench-bulk-min-ratio",
                   context={"ours": 700.0, "baseline": 1000.0, "unit": "keys/s"})
    assert describe(ratio, config) == ("bulk: 0.7 x (ours 700 keys/s vs baseline 1000 keys/s) "
                                       "(bench-bulk-min-ratio >= 0.8) MISSED")
