"""Calibration rates from reports: identical runs pass and compare clean (A/A); a slowed run is
caught on the rows its knob moves (A/B); the table says so."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

from harness.calibration.rates import Calibration, Run, aa, ab, markdown

QUICK = Path(__file__).resolve().parents[1] / "report_html" / "data" / "quick-report.json.gz"


def _quick() -> dict[str, Any]:
    return json.loads(gzip.decompress(QUICK.read_bytes()))


def _figure(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in report["figures"] if f["name"] == name)


def _run(arm: str, index: int, report: dict[str, Any] | None, exit_code: int = 0) -> Run:
    return Run(arm, index, f"{arm.lower()}-{index:02d}", exit_code, 60.0, report)


def test_identical_runs_pass_and_compare_clean() -> None:
    runs = [_run("A", i, _quick()) for i in range(1, 4)]
    rates, gates, flagged = aa(runs)
    assert [(r.hits, r.total) for r in rates] == [(3, 3), (2, 2)]
    assert all(r.meets_goal for r in rates) and flagged == {}
    assert gates["chaos-rto-p95-max-s"] == {"passed": 3}


def test_a_run_that_regressed_is_a_false_alarm_named_by_its_row() -> None:
    worse = _quick()
    _figure(worse, "chaos sever [resilient] rto p95")["value"] += 2.0
    worse["run"]["status"] = "failed"
    runs = [_run("A", 1, _quick()), _run("A", 2, worse, exit_code=1), _run("A", 3, None, 2)]
    rates, _, flagged = aa(runs)
    assert (rates[0].hits, rates[0].total) == (1, 2)  # the harness error is not a run
    assert "1 harness errors not counted" in rates[0].detail
    assert (rates[1].hits, rates[1].total) == (0, 1) and not rates[1].meets_goal
    assert flagged["chaos sever [resilient] rto p95"] == 1


def test_a_slowed_replay_is_caught_on_its_row_and_its_effect_measured() -> None:
    a = _quick()
    b = copy.deepcopy(a)
    replay = _figure(b, "journal replay 10x812 pre-keys")
    replay["value"] /= 1.3
    rate, effect = ab([(_run("A", 1, a), _run("B-replay", 1, b))], "replay", 1.3)
    assert (rate.hits, rate.total) == (1, 1) and "journal replay 1.3x slower" in rate.what
    assert abs(effect["median_new_over_old"] - 1 / 1.3) < 0.01
    same, _ = ab([(_run("A", 1, a), _run("B-replay", 1, copy.deepcopy(a)))], "replay", 1.3)
    assert (same.hits, same.total) == (0, 1)


def test_a_later_recovery_is_caught_on_the_chaos_rto_rows_only() -> None:
    a = _quick()
    b = copy.deepcopy(a)
    for f in b["figures"]:
        if f["name"].endswith("rto p95"):
            f["value"] += 0.5 + 0.5 * f["value"]
    rate, _ = ab([(_run("A", 1, a), _run("B-rto", 1, b))], "rto", 0.5)
    assert (rate.hits, rate.total) == (1, 1)
    missing, _ = ab([(_run("A", 1, a), _run("B-p99", 1, b))], "p99", 2.0)
    assert missing.total == 0 and missing.rate is None  # no load row in either report


def test_the_table_quotes_every_rate_with_its_goal() -> None:
    rates, gates, flagged = aa([_run("A", i, _quick()) for i in (1, 2)])
    text = markdown(Calibration(rates, gates, flagged), title="calibration", context="ctx")
    assert "| A/A: run passes (exit 0)" in text and "| 2/2 (100 %) | ≥ 95 % | yes |" in text
    assert "| chaos-rto-p95-max-s | 2 | 0 | 0 | 0 |" in text
