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
        "figures": {"benchmarks": [], "benchmark_stats": []},
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
    assert "**❌ FAILED**" in text and "1 of 1 checks did not pass" in text
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
