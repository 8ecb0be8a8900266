"""`authstate-harness calibrate`, small: 2 iterations of the journal replay benchmark (shrunk)
with the replay knob, real runs against real PostgreSQL. The other benchmarks are deselected, so
their gates are "not measured" and the A runs exit 1: this test shows the machinery (A and B
alternate, the knob reaches the benchmark, the table is written), not the rates; the full 20x
measurement is the same command with its defaults (docs/gates-and-noise.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.infra.postgres import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SMALL_BENCH = {"AUTHSTATE_BENCH_REPLAY_ROUNDS": "12", "AUTHSTATE_BENCH_REPLAY_WRITES": "5"}


def test_calibrate_alternates_a_and_b_runs_and_writes_the_rates_table(
        pg_server: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name, value in SMALL_BENCH.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CI", "1")
    out = tmp_path / "cal"
    code = main(["calibrate", "--runs", "2", "--suite", "bench", "--knobs", "replay",
                 "--pytest-args", "-k journal_replay", "--gate", "more-bench-rounds=0",
                 "--dsn", pg_server.dsn,
                 "--out", str(out)])
    assert code in (0, 1)
    doc = json.loads((out / "calibration.json").read_text())
    assert doc["runs"][0]["gates"]["journal-replay-min-ratio"] in ("passed", "undecided",
                                                                  "failed")
    assert [r["arm"] for r in doc["runs"]] == ["A", "B-replay", "A", "B-replay"]
    assert all(r["exit_code"] in (0, 1) for r in doc["runs"]), doc["runs"]  # no harness error
    whats = [r["what"] for r in doc["rates"]]
    assert whats == ["A/A: run passes (exit 0)", "A/A: compare of consecutive runs clean",
                     "A/B: journal replay 1.3x slower caught by compare"]
    assert [r["total"] for r in doc["rates"]] == [2, 1, 2]
    # the knob reached the replay benchmark of the B runs (not the report): its ratio fell
    assert doc["effects"]["replay"]["median_new_over_old"] < 0.97
    table = (out / "calibration.md").read_text()
    assert "| A/B: journal replay 1.3x slower caught by compare |" in table
    assert "| journal-replay-min-ratio |" in table and "| proxy-p50-max-ratio | 0 | 0 | 0 | 2 |" \
        in table  # deselected: not measured, and said so
    assert "calibration.md" not in capsys.readouterr().err
