"""Reports to render: a real quick run's report.json (chaos timelines, benchmarks), and variants.

`data/quick-report.json.gz` is the report.json of `python -m harness run --profile quick` as
written on the development machine (4 chaos scenarios with their 100 ms timelines, 13
benchmark figures). The load section is synthetic, in the shape the plan fixes, because the
load suite may not have run.
"""

from __future__ import annotations

import copy
import gzip
import json
import math
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
HOSTILE_ID = 'scenarios/x.py::test_a[<script>alert("x")</script> & "q" \'s]'
PASSWORD = "hunter2-Sup3rSecret"
KEY_B64 = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJ+w=="


def quick() -> dict[str, Any]:
    return json.loads(gzip.decompress((DATA / "quick-report.json.gz").read_bytes()))


def load_section(ops: tuple[str, ...] = ("keys.get", "keys.set", "creds.save")) -> dict[str, Any]:
    """A load section in the shape of plan-2 (HDR curve to p99.99 and max, a fault window)."""
    def curve(base: float) -> list[list[float]]:
        return [[p, round(base * (1 + 3 * math.log10(1 / (1 - min(p, 99.999) / 100))), 3)]
                for p in (50, 90, 99, 99.9, 99.99, 100)]

    op_rows = {}
    for i, name in enumerate(ops):
        c = curve(0.6 + 0.4 * i)
        op_rows[name] = {"count": 12000 - 1000 * i, "failures": i, "rate": 200.0 - 10 * i,
                         "p50_ms": c[0][1], "p95_ms": c[1][1] * 1.2, "p99_ms": c[2][1],
                         "p999_ms": c[3][1], "max_ms": c[5][1],
                         "locust": {"p50_ms": 1.0, "p95_ms": 3.0, "p99_ms": 6.0},
                         "corrected": {"p50_ms": c[0][1], "p95_ms": c[1][1], "p99_ms":
                                       c[2][1] * 1.1}, "hdr_curve": c}
    timeline = [{"t_s": float(t), "users": min(100, 10 * (t + 1)), "ok": 200 - (60 if 20 <= t
                                                                                < 25 else 0),
                 "fail": 3 if 20 <= t < 25 else 0, "p99_ms": 8.0 + (40 if 20 <= t < 26 else 0)}
                for t in range(60)]
    return {"profile": "quick", "companies": 100, "processes": 2, "duration_s": 60.0,
            "model": "closed", "rate": None,
            "total": {"count": 33000, "failures": 3, "rate": 550.0},
            "ops": op_rows, "bridge_ratio": 0.93, "timeline": timeline,
            "fault": {"schedule": "sever at 20 s for 5 s", "window": [20.0, 25.0],
                      "rto_s": 0.8, "mttd_s": 0.05, "lost_writes": 0, "anomalies": {}},
            "scale": [{"companies": c, "ops_per_s": 5.0 * c, "p99_ms": 8 + c / 50,
                       "rss_mb_per_company": 0.4} for c in (100, 500, 1000)]}


def full() -> dict[str, Any]:
    """The quick report plus a load section, 14 chaos scenarios (the real ones repeated under
    the 14 catalog names), and hostile text: a test id with markup, a DSN with a password and
    key-like base64 in a failure message."""
    report = quick()
    report["load"] = load_section()
    real = report["chaos"]["scenarios"]
    names = ["sever", "blackhole", "latency-spike", "reset-mid-write", "limit-data",
             "bandwidth", "flap", "pg-kill", "pg-restart", "terminate-backends",
             "connection-exhaustion", "read-only", "client-crash", "long-outage"]
    scenarios = []
    for i, name in enumerate(names):
        s = copy.deepcopy(real[i % len(real)])
        s["name"] = name
        scenarios.append(s)
    report["chaos"]["scenarios"] = scenarios
    suite = report["suites"][0]
    suite["failures"] = [{"test": HOSTILE_ID, "outcome": "failed", "phase": "call",
                          "message": f"connect postgresql://app:{PASSWORD}@db:5432/x failed; "
                                     f"key {KEY_B64}"}]
    report["results"]["checks"].append({"name": f"suite {HOSTILE_ID}", "kind": "suite",
                                        "status": "failed", "detail": "1 <b>failed</b> & more",
                                        "passed": False})
    return report


def real_run_with_load() -> dict[str, Any]:
    """A fresh-clone `python3 -m harness run` (quick) with the load suite's real section."""
    return json.loads(gzip.decompress((DATA / "run-with-load-report.json.gz").read_bytes()))


def real_load_with_fault() -> dict[str, Any]:
    """`authstate-harness load --companies 100 --duration 60s --processes 2
    --fault sever@20s+10s`: a real load section with a fault (RTO/MTTD as spreads)."""
    return json.loads(gzip.decompress((DATA / "load-fault-report.json.gz").read_bytes()))
