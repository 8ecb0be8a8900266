"""`report.json`: one versioned document per run, the single source `report.md` is rendered from.

Top-level keys (schema_version 2):
- `schema`, `schema_version`;
- `run`: id, started_at, finished_at, duration_s, command, profile, suites, status, exit_code,
  pytest_exit, error;
- `environment` (machine, interpreter, packages, PostgreSQL, what the test session reported;
  `harness`: version, commit/dirty of a clone, `install` {kind: clone | wheel | sdist | index
  | vcs | directory, from, installer, environment, editable}), `versions` (the ones a reader
  compares between runs);
- `config`: profile, suites (paths), gates (value, op, source, doc, suite), target (the
  `--target` spec or null, and the target each suite ran against), chaos (profile,
  scenarios, contrast), pytest_args;
- `suites`: per suite counts, duration, failures, skip reasons, slowest tests;
- `results`: status, exit_code, checks (every suite and every gate: status passed | failed |
  undecided | not measured | not applicable (reports before issue 16 say "missed" for a failed
  gate), detail, value, threshold, op, interval, policy (an undecided gate's: warn | fail),
  passed);
- `figures`: every number a suite recorded (see harness.metrics.figures.Figure): suite, name,
  value (null = not measured), unit, better, gate, threshold, gated, notes, context, interval
  ([low, high] ~95 % from the run's own samples, or null), plus `bound` (the bound it was
  judged against: its threshold, else its gate's value; null when neither), `decision`
  (passed | failed | undecided; null without a bound) and `passed` (null when there is no
  bound or it is undecided); see docs/gates-and-noise.md;
- `benchmark_stats`: pytest-benchmark's statistics (seconds) per benchmark;
- `chaos`: `{"scenarios": [...]}`, one item per scenario run as the chaos suite recorded it
  (name, target, companies, repetitions, mttd_s/rto_s/time_to_first_success_s {p50, p95,
  max}, acked_writes, lost_writes, stale_reads, indeterminate_writes, anomalies {name: count},
  verdict, availability {reads, writes}, latency_ms per phase, journal, conflicts,
  pg_recovery_s, fault, contrast, gated, timeline (per 100 ms), fault_windows); empty when the
  chaos suite did not run;
- `load`: null when no load run happened, else the main load run (harness/load/section.py):
  profile, companies, processes, duration_s, model ("closed" | "open"), rate, target,
  total {count, failures, rate}, ops {name: {count, failures, rate, p50_ms, p95_ms, p99_ms,
  p999_ms, max_ms, locust {p50_ms, p95_ms, p99_ms}, corrected {same} | null, hdr_curve
  [[percentile, ms], ...]}} (name "all" = every operation), steady (what the gates judge),
  phases, bridge_ratio, bridge, timeline [{t_s, users, ok, fail, p99_ms}] per second,
  fault null | {schedule, window [start_s, end_s], rto_s, mttd_s, lost_writes, anomalies,
  ...}, check, scale null | [{companies, ops_per_s, p99_ms, rss_mb_per_company}], errors,
  memory;
- `signal`: one item per signal scenario run (harness/signal/section.py): name, target,
  contrast, gated, verdict, messages, deliveries, decrypted, undecryptable {libsignal error:
  count}, retries, reestablished, lost, new_pod_ok, new_pod, checker, attribution, throughput
  {deliveries_per_s, time_split {crypto, store, bridge}}, fault, timeline; empty when the
  signal suite did not run;
- `artifacts`: file names in the run folder.

Readers must ignore keys they do not know (later milestones add some, e.g. load); a breaking
change bumps `schema_version`. Version 2 replaced version 1's `figures` object (`benchmarks`,
`benchmark_stats`) by the `figures` list and the top-level `benchmark_stats`, and added `chaos`.
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
SCHEMA_VERSION = 2
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


def benchmark_stats(path: Path) -> list[dict[str, Any]]:
    """pytest-benchmark's statistics, reduced to what a reader compares (seconds)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # no benchmark ran, or the child was killed while writing
    benchmarks = doc.get("benchmarks") if isinstance(doc, dict) else None
    stats = []
    for b in benchmarks if isinstance(benchmarks, list) else []:
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
                 figures: Sequence[dict[str, Any]], stats: list[dict[str, Any]],
                 chaos: Sequence[dict[str, Any]], artifacts: dict[str, str],
                 facts: dict[str, Any], load: dict[str, Any] | None = None,
                 signal: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """`figures`: judged figure dicts (see `checks.judged`); `chaos`: the chaos section items."""
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
        "figures": list(figures),
        "benchmark_stats": stats,
        "chaos": {"scenarios": list(chaos)},
        "load": load,
        "signal": list(signal),
        "artifacts": artifacts,
    }
    # Free text (failure messages, skip reasons, the command line) is scrubbed; the environment
    # is composed by us from machine facts (a commit id must stay readable) and a redacted DSN.
    return {k: v if k in ("environment", "versions") else scrub_tree(v) for k, v in report.items()}
