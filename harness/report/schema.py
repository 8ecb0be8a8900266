"""`report.json`: one versioned document per run, the single source `report.md` is rendered from.

Top-level keys (schema_version 1): `schema`, `schema_version`, `run` (id, times, command,
profile, suites, status, exit_code), `environment`, `versions`, `config` (profile, gates with
their source), `suites` (counts, duration, failures, skip reasons), `results` (checks: each
suite and gate, passed or not), `figures` (benchmark ratios, pytest-benchmark statistics),
`artifacts` (file names in the run folder). Later milestones add keys (chaos, load); readers
must ignore keys they do not know, and a breaking change bumps `schema_version`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.report.checks import Check
from harness.report.redact import scrub_tree
from harness.report.summary import SuiteSummary

SCHEMA = "authstate-harness/report"
SCHEMA_VERSION = 1
STATUS_EXIT = {"passed": 0, "failed": 1, "error": 2, "interrupted": 130}


def suite_section(suite: SuiteSummary) -> dict[str, Any]:
    return {
        "name": suite.name, "description": suite.description,
        "status": "passed" if suite.passed else "failed",
        "counts": dict(suite.counts), "tests": suite.tests,
        "duration_s": round(suite.duration, 3),
        "failures": [{"test": t.nodeid, "outcome": t.outcome, "phase": t.phase,
                      "message": t.message} for t in suite.failures],
        "skipped": [{"reason": reason, "count": n}
                    for reason, n in sorted(suite.skip_reasons.items())],
        "slowest": [{"test": t.nodeid, "duration_s": round(t.duration, 3)}
                    for t in suite.slowest],
    }


def load_json_list(path: Path, key: str | None = None) -> list[dict[str, Any]]:
    """A JSON file written by the child (may be missing after a crash: then nothing)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    items = doc.get(key, []) if key and isinstance(doc, dict) else doc
    return items if isinstance(items, list) else []


def benchmark_stats(path: Path) -> list[dict[str, Any]]:
    """pytest-benchmark's statistics, reduced to what a reader compares (seconds)."""
    stats = []
    for b in load_json_list(path, "benchmarks"):
        s = b.get("stats", {})
        stats.append({"name": b.get("fullname", b.get("name")),
                      **{k: s.get(k) for k in ("min", "median", "mean", "max", "stddev",
                                               "rounds", "ops")}})
    return stats


def run_status(checks: Sequence[Check], *, error: str | None, interrupted: bool) -> str:
    if interrupted:
        return "interrupted"
    if error:
        return "error"
    return "passed" if all(c.passed for c in checks) else "failed"


def _fault_proxy(facts: dict[str, Any]) -> str | None:
    """Which fault proxy the run measured through, e.g. "embedded-subprocess 2.12.0"."""
    proxy = facts.get("fault_proxy")
    return f"{proxy['kind']} {proxy['version']}" if proxy else None


def build_report(*, run: dict[str, Any], environment: dict[str, Any], config: dict[str, Any],
                 suites: Sequence[SuiteSummary], checks: Sequence[Check],
                 comparisons: list[dict[str, Any]], stats: list[dict[str, Any]],
                 artifacts: dict[str, str], facts: dict[str, Any]) -> dict[str, Any]:
    env = dict(environment)
    versions = {"harness": env["harness"]["version"], "python": env["python"]["version"],
                "postgres": env.get("postgres", {}).get("version"), "node": env["node"]["node"],
                "baileys": (facts.get("baileys") or {}).get("version"),
                "fault_proxy": _fault_proxy(facts),
                **{k: v for k, v in env["packages"].items() if v}}
    report = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION,
        "run": run,
        "environment": {**env, "session": facts},
        "versions": versions,
        "config": config,
        "suites": [suite_section(s) for s in suites],
        "results": {"status": run["status"], "exit_code": run["exit_code"],
                    "checks": [c.to_dict() for c in checks]},
        "figures": {"benchmarks": comparisons, "benchmark_stats": stats},
        "artifacts": artifacts,
    }
    # Free text (failure messages, skip reasons, the command line) is scrubbed; the environment
    # is composed by us from machine facts (a commit id must stay readable) and a redacted DSN.
    return {k: v if k in ("environment", "versions") else scrub_tree(v) for k, v in report.items()}
