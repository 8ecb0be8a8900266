"""`compare OLD NEW` and `run --baseline`: a doctored worse report is flagged, an identical one
passes, noise recorded in the reports widens the allowance, bad input exits 2 with a hint."""

from __future__ import annotations

import copy
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.commands.run import compare_with_baseline
from harness.report.compare import IMPROVED, MISSING, REGRESSED, SAME, Tolerance, compare
from harness.runner.job import RunResult

QUICK = Path(__file__).resolve().parents[1] / "report_html" / "data" / "quick-report.json.gz"


def _quick() -> dict[str, Any]:
    return json.loads(gzip.decompress(QUICK.read_bytes()))


def _save(folder: Path, report: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return folder


def _figure(report: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in report["figures"] if f["name"] == name)


def _row(cmp: Any, key: str) -> Any:
    return next(r for r in cmp.rows if r.key == key)


def _worse(report: dict[str, Any]) -> dict[str, Any]:
    """RTO p95 up far beyond its spread, a lost write, an anomaly, a throughput ratio down 30 %."""
    worse = copy.deepcopy(report)
    rto = _figure(worse, "chaos sever [resilient] rto p95")
    rto["value"] += 2.0
    rto["context"]["max"] += 2.0
    _figure(worse, "chaos pg-restart [resilient] lost writes")["value"] = 1.0
    worse["chaos"]["scenarios"][1]["anomalies"] = {"lost write": 1}
    _figure(worse, "keys.set 812 pre-keys")["value"] *= 0.7
    return worse


def test_identical_reports_pass_with_no_regression(capsys: pytest.CaptureFixture[str],
                                                   tmp_path: Path) -> None:
    report = _quick()
    cmp = compare(report, copy.deepcopy(report))
    assert cmp.rows and all(r.verdict == SAME for r in cmp.rows)
    assert cmp.exit_code == 0
    a, b = _save(tmp_path / "a", report), _save(tmp_path / "b", report)
    assert main(["compare", str(a), str(b / "report.json")]) == 0
    assert "OK: no regression" in capsys.readouterr().out


def test_doctored_worse_report_flags_each_worse_figure_and_exits_1(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    report = _quick()
    worse = _worse(report)
    cmp = compare(report, worse)
    flagged = {r.key for r in cmp.regressions}
    assert flagged == {"chaos sever [resilient] rto p95",
                       "chaos pg-restart [resilient] lost writes",
                       "chaos: blackhole [resilient] anomalies", "bench: keys.set 812 pre-keys"}
    a, b = _save(tmp_path / "a", report), _save(tmp_path / "b", worse)
    assert main(["compare", str(a), str(b)]) == 1
    assert "REGRESSED: 4 regressions" in capsys.readouterr().out
    assert main(["compare", str(b), str(a)]) == 0  # the other way round it improved


def test_counts_allow_no_increase_while_times_get_an_allowance() -> None:
    report = _quick()
    worse = copy.deepcopy(report)
    _figure(worse, "chaos sever [resilient] lost writes")["value"] = 1.0
    mttd = _figure(worse, "chaos sever [resilient] mttd p95")
    mttd["value"] += 0.02  # under the 0.05 s floor
    cmp = compare(report, worse)
    assert _row(cmp, "chaos sever [resilient] lost writes").verdict == REGRESSED
    assert _row(cmp, "chaos sever [resilient] lost writes").basis.startswith("count")
    assert _row(cmp, "chaos sever [resilient] mttd p95").verdict == SAME


def test_one_faults_company_spread_is_not_noise_between_runs() -> None:
    # Issue 16: two identical runs three minutes apart went 0.648 -> 1.003 (REGRESSED, allowed
    # +-0.216 from p50..max of one fault's 100 companies). That spread says nothing about the
    # next run: without repetitions, only the relative tolerance and the floor allow anything.
    report = _quick()
    rto = _figure(report, "chaos sever [resilient] rto p95")
    spread = (rto["context"]["max"] - rto["context"]["p50"]) / 2
    assert spread > 0.05 + 0.1 * rto["value"]  # the old rule would have allowed the spread
    worse = copy.deepcopy(report)
    _figure(worse, "chaos sever [resilient] rto p95")["value"] += spread * 0.9
    row = _row(compare(report, worse), "chaos sever [resilient] rto p95")
    assert row.basis != "baseline spread" and row.allowed < spread
    assert row.verdict == REGRESSED


def test_the_runs_intervals_from_repetitions_widen_the_allowance() -> None:
    report = _quick()
    key = "chaos sever [resilient] rto p95"
    rto = _figure(report, key)
    rto["interval"] = [rto["value"] - 0.2, rto["value"] + 0.2]  # from 3 repetitions
    worse = copy.deepcopy(report)
    _figure(worse, key)["value"] += 0.25
    row = _row(compare(report, worse), key)
    assert row.basis == "runs' intervals"
    assert row.allowed == pytest.approx(2 ** 0.5 * 0.2)  # the difference of two such runs
    assert row.verdict == SAME
    _figure(worse, key)["value"] += 0.1
    assert _row(compare(report, worse), key).verdict == REGRESSED
    assert _row(compare(report, worse, Tolerance(noise=0.0)), key).allowed < 0.2


def test_a_wider_interval_in_the_new_run_does_not_widen_its_own_allowance() -> None:
    report = _quick()
    key = "chaos sever [resilient] rto p95"
    rto = _figure(report, key)
    rto["interval"] = [rto["value"] - 0.1, rto["value"] + 0.1]
    worse = copy.deepcopy(report)
    bad = _figure(worse, key)
    bad["value"] += 1.0
    bad["interval"] = [bad["value"] - 3.0, bad["value"] + 3.0]  # the regression is noisier
    row = _row(compare(report, worse), key)
    assert row.allowed == pytest.approx(max(2 ** 0.5 * 0.1, 0.1 * rto["value"], 0.05))
    assert row.verdict == REGRESSED


def test_tolerance_is_configurable_on_the_command_line(tmp_path: Path) -> None:
    report = _quick()
    worse = copy.deepcopy(report)
    _figure(worse, "keys.set 812 pre-keys")["value"] *= 0.85  # 15 % lower throughput ratio
    a, b = _save(tmp_path / "a", report), _save(tmp_path / "b", worse)
    assert main(["compare", str(a), str(b)]) == 1
    assert main(["compare", "--tolerance", "0.2", str(a), str(b)]) == 0


def test_ungated_rows_do_not_fail_unless_strict() -> None:
    report = _quick()
    worse = copy.deepcopy(report)
    _figure(worse, "proxy point read (pre-key, unpinned)")["value"] *= 2  # not gated
    cmp = compare(report, worse)
    row = _row(cmp, "bench: proxy point read (pre-key, unpinned)")
    assert row.verdict == REGRESSED and not row.decides
    assert cmp.exit_code == 0
    assert compare(report, worse, strict=True).exit_code == 1


def test_a_figure_the_new_run_did_not_measure_is_a_regression() -> None:
    report = _quick()
    worse = copy.deepcopy(report)
    _figure(worse, "chaos blackhole [resilient] rto p95")["value"] = None
    row = _row(compare(report, worse), "chaos blackhole [resilient] rto p95")
    assert row.verdict == MISSING
    assert compare(report, worse).exit_code == 1


def test_run_verdict_going_from_passed_to_failed_is_a_regression() -> None:
    report = _quick()
    failed = copy.deepcopy(report)
    failed["run"]["status"] = "failed"
    cmp = compare(report, failed)
    assert cmp.regressions == [] and cmp.exit_code == 1
    assert "passed -> failed" in cmp.headline()


def test_load_section_percentiles_are_compared_when_no_load_figures_exist() -> None:
    import sys

    sys.path.insert(0, str(QUICK.parents[1]))
    from report_html_data import load_section  # type: ignore[import-not-found]

    report = _quick()
    report["load"] = load_section()
    worse = copy.deepcopy(report)
    worse["load"]["ops"]["keys.get"]["p99_ms"] *= 3
    worse["load"]["ops"]["keys.set"]["p50_ms"] *= 0.5
    cmp = compare(report, worse)
    assert _row(cmp, "load: keys.get p99").verdict == REGRESSED
    assert _row(cmp, "load: keys.set p50").verdict == IMPROVED
    assert cmp.exit_code == 1


def test_markdown_output_is_a_table_with_escaped_cells(capsys: pytest.CaptureFixture[str],
                                                       tmp_path: Path) -> None:
    report = _quick()
    worse = _worse(report)
    _figure(worse, "keys.set 812 pre-keys")["name"] = "keys.set | piped"
    _figure(report, "keys.set 812 pre-keys")["name"] = "keys.set | piped"
    a, b = _save(tmp_path / "a", report), _save(tmp_path / "b", worse)
    assert main(["compare", "--markdown", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("## ❌ compare")
    assert "| figure | better | old | new | delta | allowed | verdict |" in out
    assert "keys.set \\| piped" in out
    assert "❌ regressed" in out


@pytest.mark.parametrize(("setup", "message"), [
    (lambda d: None, "no report.json in"),
    (lambda d: (d / "report.json").write_text('{"schema": "authstate-harness/report", '),
     "is not valid JSON"),
    (lambda d: (d / "report.json").write_text('{"hello": 1}'),
     "is not an authstate-harness report"),
    (lambda d: (d / "report.json").write_text(
        '{"schema": "authstate-harness/report", "schema_version": 9}'),
     "has schema_version 9"),
    (lambda d: (d / "report.json").write_bytes(b"\xff\xfe\x00"), "is not UTF-8"),
])
def test_bad_input_exits_2_with_a_clear_message_and_hint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], setup: Any, message: str) -> None:
    good = _save(tmp_path / "good", _quick())
    bad = tmp_path / "bad"
    bad.mkdir()
    setup(bad)
    assert main(["compare", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert message in err and "hint:" in err


def test_missing_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _save(tmp_path / "good", _quick())
    assert main(["compare", str(tmp_path / "nope"), str(good)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_run_baseline_turns_a_passing_run_into_exit_1_and_keeps_compare_md(
        tmp_path: Path) -> None:
    report = _quick()
    worse = _worse(report)
    out = tmp_path / "run"
    out.mkdir()
    result = RunResult(exit_code=0, status="passed", out_dir=out, report=worse, checks=[])
    assert compare_with_baseline(result, report, Tolerance(), strict=False) == 1
    assert "❌ regressed" in (out / "compare.md").read_text()
    same = RunResult(exit_code=0, status="passed", out_dir=out, report=report, checks=[])
    assert compare_with_baseline(same, report, Tolerance(), strict=False) == 0
    errored = RunResult(exit_code=2, status="error", out_dir=out, report=worse, checks=[])
    assert compare_with_baseline(errored, report, Tolerance(), strict=False) == 2


def test_report_command_rerenders_views_and_reads_schema_1(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _save(tmp_path / "reports" / "r2", _quick())
    assert main(["report", str(run)]) == 0
    assert (run / "report.md").exists() and (run / "report.html").exists()
    v1 = copy.deepcopy(_quick())
    v1["schema_version"] = 1
    v1["figures"] = {"benchmarks": [{"name": "keys.set 812 pre-keys", "metric": "throughput",
                                     "ours": 1.0, "baseline": 1.1, "unit": "keys/s",
                                     "ratio": 0.9, "higher_is_better": True, "target": 0.8,
                                     "gated": True, "passed": True, "note": "v1"}],
                     "benchmark_stats": []}
    del v1["benchmark_stats"], v1["chaos"]
    old = _save(tmp_path / "reports" / "r1", v1)
    assert main(["report", str(old)]) == 0
    assert "schema 1, upgraded" in capsys.readouterr().out
    assert "keys.set 812 pre-keys" in (old / "report.html").read_text()
    assert main(["report", str(tmp_path / "reports")]) == 0
    index = (tmp_path / "reports" / "index.html").read_text()
    assert 'href="r1/report.html"' in index and 'href="r2/report.html"' in index
    assert main(["compare", str(old), str(run)]) == 0  # v1 vs v2: the ratio row is compared


# -- compare that knows what it compares (issue 16 §3) ------------------------------------------
@pytest.mark.parametrize(("change", "what"), [
    (lambda r: r["environment"]["postgres"].update(version="17.2"), "PostgreSQL major version"),
    (lambda r: r["environment"]["postgres"].update(kind="external"), "PostgreSQL kind"),
    (lambda r: r["run"].update(profile="ci"), "run profile"),
    (lambda r: r["environment"]["machine"].update(usable_cpus=8, cpus=8), "machine cores"),
    (lambda r: r["config"]["target"]["by_suite"].update(chaos="node:store.js"),
     "target of the chaos suite"),
])
def test_runs_that_differ_in_what_makes_them_comparable_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Any, what: str) -> None:
    report = _quick()
    other = copy.deepcopy(report)
    change(other)
    cmp = compare(report, other)
    assert [d.what for d in cmp.incomparable] == [what]
    a, b = _save(tmp_path / "a", report), _save(tmp_path / "b", other)
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert "not comparable" in err and what in err and "--allow-incomparable" in err
    assert main(["compare", "--allow-incomparable", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert f"NOT COMPARABLE: {what}" in out and "INCOMPARABLE runs" in out


def test_a_different_scenario_set_is_compared_on_the_common_rows_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = _quick()
    fewer = copy.deepcopy(report)
    fewer["chaos"]["scenarios"][-1]["verdict"] = "skipped"
    cmp = compare(report, fewer)
    assert cmp.incomparable == [] and [d.what for d in cmp.differences] == ["chaos scenarios"]
    a, b = _save(tmp_path / "a", report), _save(tmp_path / "b", fewer)
    assert main(["compare", str(a), str(b)]) == 0
    assert "differs: chaos scenarios" in capsys.readouterr().out


def test_run_baseline_ends_with_one_verdict_that_matches_the_exit_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Issue 16: `run --profile predeploy --baseline` printed `PASSED ... (exit 0)` and then
    # `predeploy REGRESSED exit=1`.
    import io

    from rich.console import Console

    from harness.commands import compare as compare_command
    from harness.commands import run as run_command

    report = _quick()
    worse = _worse(report)
    worse["run"]["profile"] = report["run"]["profile"] = "predeploy"
    baseline = _save(tmp_path / "base", report)
    out = tmp_path / "new"
    out.mkdir()

    class FakeJob:
        def __init__(self, options: Any, console: Any) -> None:
            pass

        def run(self) -> RunResult:
            return RunResult(exit_code=0, status="passed", out_dir=out, report=worse, checks=[])

    screen = io.StringIO()
    monkeypatch.setattr(run_command, "MainJob", FakeJob)
    monkeypatch.setattr(run_command, "console", Console(file=screen, width=200))
    monkeypatch.setattr(compare_command, "console", Console(file=screen, width=200))
    monkeypatch.setattr(run_command, "precheck_baseline", lambda *a: None)
    assert main(["run", "--profile", "predeploy", "--baseline", str(baseline)]) == 1
    text = screen.getvalue()
    verdicts = [line for line in text.splitlines()  # the run's verdict lines, not compare's
                if line.startswith(("PASSED ", "FAILED ", "REGRESSED "))]
    assert verdicts == [verdicts[-1]] and verdicts[-1].startswith("REGRESSED")
    assert verdicts[-1].endswith("(exit 1)")
    assert text.index("REGRESSED: 4 regressions") < text.index(verdicts[-1])
    stdout = capsys.readouterr().out.strip().splitlines()
    assert stdout[-1].startswith("predeploy REGRESSED exit=1")


def test_run_baseline_of_another_profile_is_refused_before_the_run() -> None:
    from harness.commands.run import precheck_baseline
    from harness.errors import ConfigError

    report = _quick()  # a quick run
    with pytest.raises(ConfigError, match="run profile: quick -> ci"):
        precheck_baseline(report, "ci")
