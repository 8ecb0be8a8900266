"""report.md is rendered from report.json alone and survives awkward test ids."""

from __future__ import annotations

from harness.report.markdown import render


def _report(**overrides: object) -> dict:  # type: ignore[type-arg]
    report = {
        "run": {"id": "20261122T000000Z", "status": "failed", "profile": "ci",
                "suites": ["property"], "duration_s": 12.0, "exit_code": 1, "error": None},
        "results": {"checks": [
            {"name": "suite property", "status": "failed", "detail": "1 of 2 tests failed",
             "passed": False}]},
        "suites": [{"name": "property", "counts": {"passed": 1, "failed": 1, "error": 0,
                                                    "skipped": 0},
                    "duration_s": 3.0, "skipped": [],
                    "failures": [{"test": "a.py::t[x|y]", "outcome": "failed", "phase": "call",
                                  "message": "assert 1 == 2\nnext line"}]}],
        "figures": [], "benchmark_stats": [], "chaos": {"scenarios": []},
        "environment": {"harness": {"version": "0.1.0", "commit": None},
                        "python": {"version": "3.11", "implementation": "CPython"},
                        "machine": {"platform": "Linux", "usable_cpus": 2, "as_root": False},
                        "node": {"node": None}, "postgres": {"version": "18", "kind": "embedded"}},
        "config": {"gates": [{"name": "g", "op": ">=", "value": 1, "source": "--gate"}]},
        "artifacts": {"report_md": "report.md"},
    }
    report.update(overrides)
    return report


def test_verdict_failures_and_escaping() -> None:
    text = render(_report())
    assert "**❌ FAILED**" in text and "1 of 1 check did not pass" in text
    assert "a.py::t[x\\|y]" in text
    assert "  assert 1 == 2\n  next line" in text
    assert "absent (Baileys interop skipped)" in text and "g >= 1 (--gate)" in text


def test_harness_error_is_shown_first() -> None:
    run = {**_report()["run"], "status": "error", "exit_code": 2,
           "error": "could not start PostgreSQL"}
    text = render(_report(run=run))
    assert text.index("## Harness error") < text.index("## Checks")


def test_environment_names_the_fault_proxy_measured_through() -> None:
    assert "| fault proxy | not used |" in render(_report())
    text = render(_report(versions={"fault_proxy": "embedded-subprocess 2.12.0"}))
    assert "| fault proxy | embedded-subprocess 2.12.0 |" in text


def _scenario(**overrides: object) -> dict:  # type: ignore[type-arg]
    scenario = {
        "name": "sever", "target": "resilient", "companies": 100, "repetitions": 1,
        "mttd_s": {"p50": 0.0123, "p95": 0.21, "max": 0.4},
        "rto_s": {"p50": 0.3, "p95": 0.61, "max": 0.9},
        "reported": {"mttd_s": {"p95": 0.05}, "rto_s": {"p95": 0.11}},
        "time_to_first_success_s": {"p50": 0.1, "p95": 0.25, "max": 0.3},
        "acked_writes": 5400, "lost_writes": 0, "stale_reads": 0, "indeterminate_writes": 3,
        "anomalies": {}, "verdict": "passed", "availability": {"reads": 1.0, "writes": 0.985},
        "journal": {"peak_depth": 812, "replay_rate": 15000.0}, "conflicts": 0,
        "fault": {"kind": "sever", "duration_s": 10.0}, "contrast": False, "gated": True,
        "timeline": [{"t": 0.0, "ok": 10, "fail": 0, "info": 0}], "fault_windows": [],
    }
    scenario.update(overrides)
    return scenario


def test_chaos_section_renders_an_rto_table_with_notes_and_escapes_every_cell() -> None:
    contrast = _scenario(target="reference|plain", contrast=True, gated=False,
                         verdict="failed", anomalies={"stale-read": 2, "lost": 0},
                         availability={"reads": 0.0, "writes": 0.0})
    crash = _scenario(name="pg-kill", pg_recovery_s={"p50": 1.2, "p95": 1.5, "max": 1.61},
                      rto_s=None,
                      latency_ms={"before": {"p50": 0.4, "p99": 1.2}, "during": {"p50": 80}},
                      fault={"kind": "pg-kill\nnext", "duration_s": 5})
    skipped = _scenario(name="read-only", verdict="skipped", reason="needs a | role")
    text = render(_report(chaos={"scenarios": [_scenario(), contrast, crash, skipped]}))
    section = text[text.index("## Chaos"):text.index("## Environment")]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = lines[0]
    for column in ("MTTD p50/p95/max s", "RTO p50/p95/max s", "store's own MTTD / RTO p95 s",
                   "first success p95 s",
                   "acked", "lost", "stale", "indeterminate", "availability reads/writes",
                   "journal peak", "verdict", "companies × reps"):
        assert column in header
    assert ("| sever | resilient | 100 × 1 | 0.012 / 0.210 / 0.400 | 0.300 / 0.610 / 0.900 "
            "| 0.050 / 0.110 | 0.250 | 5400 | 0 | 0 | 3 | 100.0 % / 98.5 % | 812 | — | ✅ passed |"
            ) in section
    assert "| reference\\|plain (contrast, not gated) |" in section  # `|` escaped
    assert "❌ failed: stale-read (2 key reads) |" in section  # by name; zero counts left out
    assert "| pg-kill | resilient | 100 × 1 | 0.012 / 0.210 / 0.400 | — |" in section
    assert ("PostgreSQL accepted connections again after 1.200 / 1.500 / 1.610 s "
            "(p50 / p95 / max)") in section
    assert "⏭️ skipped |" in section and "- read-only (resilient): skipped: needs a \\| role" \
        in section
    assert "fault pg-kill<br>next for 5 s" in section  # free text cannot break the list
    assert "latency p50 before 0.4 (p99 1.2) ms, during 80 ms" in section
    assert "journal replay 15000 rows/s" in section


def test_no_chaos_section_without_scenarios_and_old_reports_still_render() -> None:
    assert "## Chaos" not in render(_report())
    old = _report()
    del old["chaos"]
    assert "## Chaos" not in render(old)


def test_benchmark_table_is_built_from_bench_figures() -> None:
    figures = [
        {"suite": "bench", "name": "keys.set 812 pre-keys", "value": 0.8712, "unit": "x",
         "better": "higher", "gate": "bench-bulk-min-ratio", "threshold": None, "gated": True,
         "notes": "paired | rounds", "bound": 0.8, "passed": True,
         "context": {"metric": "throughput", "unit": "keys/s", "ours": 41000.0,
                     "baseline": 47000.0, "rounds": 100, "paired": True}},
        {"suite": "bench", "name": "keys.get one session", "value": 1.9, "unit": "x",
         "better": "lower", "gate": "bench-point-get-max-ratio", "threshold": None,
         "gated": False, "notes": "", "bound": 1.25, "passed": False,
         "context": {"metric": "p50 latency", "unit": "ms", "ours": 0.38, "baseline": 0.2}},
        {"suite": "chaos", "name": "chaos sever [resilient] rto p95", "value": 0.6, "unit": "s",
         "better": "lower", "gate": "chaos-rto-p95-max-s", "threshold": None, "gated": True,
         "notes": "", "bound": 1.0, "passed": True, "context": {}},
    ]
    text = render(_report(figures=figures))
    bench = text[text.index("## Benchmarks"):text.index("## Environment")]
    assert ("| keys.set 812 pre-keys | throughput | 4.1e+04 keys/s | 4.7e+04 keys/s | 0.871 "
            "| >= 0.8 | met |") in bench
    assert "| keys.get one session | p50 latency | 0.38 ms | 0.2 ms | 1.900 | <= 1.25 " \
           "| not gated |" in bench
    assert "- keys.set 812 pre-keys: paired \\| rounds" in bench
    assert "chaos sever" not in bench


def test_not_applicable_gates_are_listed_but_not_counted() -> None:
    checks = [{"name": "suite bench", "status": "passed", "detail": "3 passed", "passed": True},
              {"name": "gate chaos-rto-p95-max-s", "status": "not applicable",
               "detail": "the chaos suite did not run", "passed": True}]
    run = {**_report()["run"], "status": "passed", "exit_code": 0}
    text = render(_report(run=run, results={"checks": checks}))
    assert "All 1 check passed. (1 check not applicable: its suite did not run.)" in text
    assert "| ➖ | gate chaos-rto-p95-max-s | the chaos suite did not run |" in text


def test_a_fault_under_load_given_as_plain_numbers_still_renders() -> None:
    """Older load sections (and the plan's shape) give the fault's RTO/MTTD as one number."""
    load = {"profile": "steady", "companies": 10, "processes": 1, "duration_s": 30.0,
            "model": "closed", "target": "reference", "total": {"count": 1, "failures": 0},
            "ops": {}, "fault": {"schedule": "sever@5s+5s", "window": [5.0, 10.0],
                                 "rto_s": 0.8, "mttd_s": 0.05, "lost_writes": 0}}
    text = render(_report(load=load))
    assert "MTTD p95 0.05 s, RTO p50 0.8 s / p95 0.8 s" in text


def test_call_counts_and_anomaly_counts_are_named_apart_and_explained() -> None:
    """A real broken store: 1144 lost write calls, 1158 stale read calls; the checker's 1430
    lost keys and 1515 stale key reads. "lost 1144" beside "lost ×1430" read as a contradiction."""
    from harness.report.html import render_html

    broken = _scenario(verdict="failed", lost_writes=1144, stale_reads=1158,
                       anomalies={"lost": 1430, "stale-read": 1515, "resurrected": 1})
    report = _report(chaos={"scenarios": [broken]})
    text = render(report)
    section = text[text.index("## Chaos"):text.index("## Environment")]
    header = next(line for line in section.splitlines() if line.startswith("| scenario"))
    assert "| lost writes | stale reads |" in header and "| lost |" not in header
    assert "| 1144 | 1158 |" in section
    assert ("failed: lost (1430 keys), resurrected (1 key), stale-read (1515 key reads) |"
            in section)
    assert "lost ×" not in section and "stale-read ×" not in section
    assert "lost writes and indeterminate writes are write calls" in section  # the legend
    page = render_html(report)
    assert "lost (1430 keys)" in page and "stale-read (1515 key reads)" in page
    assert "stale reads are read calls that returned at least one superseded value" in page


def test_inconclusive_and_undecided_are_shown_apart_from_passed_and_failed() -> None:
    from harness.report.html import render_html

    report = _report(chaos={"scenarios": [_scenario(verdict="inconclusive")]})
    report["results"]["checks"].append({"name": "gate chaos-rto-p95-max-s", "kind": "gate",
                                        "status": "undecided", "detail": "straddles",
                                        "passed": True})
    text = render(report)
    assert "❔ inconclusive |" in text and "| ❔ | gate chaos-rto-p95-max-s |" in text
    page = render_html(report)
    assert '<span class="st-inconclusive">inconclusive</span>' in page
    assert 'class="st-undecided nowrap">undecided' in page


def test_fields_added_by_later_milestones_are_shown_not_fatal() -> None:
    """The observer's fields: a precondition that was not met, the store's own (reported,
    never judged) figures, a figure's interval; keys nobody knows are ignored."""
    from harness.report.html import render_html

    scenario = _scenario(verdict="inconclusive", future_key={"x": 1},
                         precondition={"name": "callers-saw-fault", "met": False,
                                       "detail": "no call was in flight"},
                         reported={"rto_s": {"p95": 0.2}, "deadline_s": 1.5})
    figures = [{"suite": "load", "name": "load p95 [steady, 100 companies]", "value": 2.7,
                "unit": "ms", "better": "lower", "gate": "load-p95-max-ms", "gated": True,
                "bound": 200.0, "passed": True, "interval": [2.5, 3.1], "context": {}}]
    load = {"profile": "steady", "companies": 100, "steady": {"phases": ["steady"]}}
    report = _report(chaos={"scenarios": [scenario]}, figures=figures, load=load)
    text = render(report)
    assert "❔ inconclusive: callers-saw-fault not met |" in text
    assert "| — / 0.200 |" in text  # the store's own MTTD / RTO p95, in their own column
    page = render_html(report)
    assert "2.7 ms (95 %: 2.5 ms – 3.1 ms)" in page and "not met" in page


def test_an_inconclusive_scenario_names_its_unmet_precondition() -> None:
    scenario = _scenario(verdict="inconclusive", reason="precondition path-down not met in "
                         "repetition 1 after 3 attempt(s): probe never saw the path down",
                         precondition={"name": "path-down", "met": False, "detail": "0/12"})
    section = render(_report(chaos={"scenarios": [scenario]}))
    assert "inconclusive: path-down not met" in section
    assert "probe never saw the path down" in section


def test_signal_conversations_beside_a_fault_show_in_the_chaos_table() -> None:
    scenario = _scenario(signal={"messages": 137, "decrypted": 251,
                                 "undecryptable_with_new_pod": 0, "reestablished": 0,
                                 "new_pod_ok": True})
    section = render(_report(chaos={"scenarios": [scenario]}))
    assert "Signal messages / decrypted / undecryptable" in section
    assert "| 137 / 251 / 0 |" in section
