"""Rates from calibration runs: how often identical runs pass and compare clean (A/A), how
often a deliberately slowed run is caught by `compare` (A/B). Pure: reports in, numbers and a
Markdown table out."""

from __future__ import annotations

import itertools
import re
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.calibration.knobs import WHAT
from harness.report.compare import Comparison, Row, compare

# The gated compare rows each knob must move (by key).
KNOB_ROWS: Mapping[str, re.Pattern[str]] = {
    "replay": re.compile(r"^bench: journal replay .*pre-keys$"),
    "rto": re.compile(r"^chaos .* rto p95$"),
    "p99": re.compile(r"^load p99 \["),
}
GOAL = 0.95  # issue 16: >= 19 of 20


@dataclass
class Run:
    """One calibration run: which arm, its exit code, and its report (None: none written)."""

    arm: str  # "A" or "B-<knob>"
    index: int
    folder: str
    exit_code: int
    seconds: float
    report: dict[str, Any] | None = None

    def gate_statuses(self) -> dict[str, str]:
        checks = ((self.report or {}).get("results") or {}).get("checks") or []
        return {c["name"].removeprefix("gate "): c["status"] for c in checks
                if c.get("kind") == "gate" and c.get("status") != "not applicable"}

    def summary(self) -> dict[str, Any]:
        run = (self.report or {}).get("run") or {}
        return {"arm": self.arm, "index": self.index, "folder": self.folder,
                "exit_code": self.exit_code, "status": run.get("status"),
                "seconds": round(self.seconds, 1), "gates": self.gate_statuses(),
                "chaos_seed": (((self.report or {}).get("config") or {}).get("chaos")
                               or {}).get("seed")}


@dataclass
class Rate:
    what: str
    hits: int
    total: int
    goal: float | None = GOAL
    detail: str = ""

    @property
    def rate(self) -> float | None:
        return self.hits / self.total if self.total else None

    @property
    def meets_goal(self) -> bool | None:
        if self.goal is None or self.rate is None:
            return None
        return self.rate >= self.goal

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "hits": self.hits, "total": self.total, "rate": self.rate,
                "goal": self.goal, "meets_goal": self.meets_goal, "detail": self.detail}


@dataclass
class Calibration:
    rates: list[Rate] = field(default_factory=list)
    gate_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    false_alarms: dict[str, int] = field(default_factory=dict)  # A/A compare rows flagged
    effects: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"rates": [r.to_dict() for r in self.rates], "gate_counts": self.gate_counts,
                "false_alarms": self.false_alarms, "effects": self.effects}


def _compare(old: Mapping[str, Any], new: Mapping[str, Any]) -> Comparison:
    return compare(old, new)


def _knob_rows(cmp: Comparison, knob: str) -> list[Row]:
    return [r for r in cmp.rows if r.decides and KNOB_ROWS[knob].search(r.key)]


def aa(runs: Sequence[Run]) -> tuple[list[Rate], dict[str, dict[str, int]], dict[str, int]]:
    """Pass rate of identical runs, their gates' statuses, and how often `compare` between
    consecutive ones stayed clean (and which rows it flagged when it did not)."""
    done = [r for r in runs if r.report is not None]
    passed = sum(r.exit_code == 0 for r in done)
    undecided = sum(any(s == "undecided" for s in r.gate_statuses().values()) for r in done)
    errors = sum(r.exit_code not in (0, 1) for r in runs)
    gates: dict[str, Counter[str]] = {}
    for r in done:
        for gate, status in r.gate_statuses().items():
            gates.setdefault(gate, Counter())[status] += 1
    clean = 0
    flagged: Counter[str] = Counter()
    pairs = list(itertools.pairwise(done))
    for old, new in pairs:
        cmp = _compare(old.report or {}, new.report or {})
        clean += not cmp.regressed
        flagged.update(r.key for r in cmp.regressions)
        if cmp.status_regressed:
            flagged["run verdict passed -> " + str(cmp.new_status)] += 1
    rates = [
        Rate("A/A: run passes (exit 0)", passed, len(done),
             detail=f"{undecided} of them with an undecided gate (a warning); "
                    f"{errors} harness errors not counted" if errors else
                    f"{undecided} of them with an undecided gate (a warning)"),
        Rate("A/A: compare of consecutive runs clean", clean, len(pairs)),
    ]
    return rates, {g: dict(c) for g, c in sorted(gates.items())}, dict(flagged.most_common())


def ab(pairs: Sequence[tuple[Run, Run]], knob: str, value: float
       ) -> tuple[Rate, dict[str, Any]]:
    """How often `compare A B` flags the rows the knob moves, and the effect it measured."""
    caught, total, ratios = 0, 0, []
    for a, b in pairs:
        if a.report is None or b.report is None:
            continue
        cmp = _compare(a.report, b.report)
        rows = _knob_rows(cmp, knob)
        if not rows:
            continue
        total += 1
        caught += any(r in cmp.regressions for r in rows)
        for r in rows:
            if r.old and r.new is not None:
                ratios.append(r.new / r.old)
    what = WHAT[knob].format(v=value)
    effect = {"knob": knob, "value": value, "pairs": total,
              "median_new_over_old": round(statistics.median(ratios), 3) if ratios else None}
    return Rate(f"A/B: {what} caught by compare", caught, total,
                detail="" if ratios else "no comparable row measured"), effect


def _pct(rate: Rate) -> str:
    return "—" if rate.rate is None else f"{rate.hits}/{rate.total} ({rate.rate * 100:.0f} %)"


def markdown(cal: Calibration, *, title: str, context: str) -> str:
    out = [f"## {title}", "", context, "",
           "| measured | rate | goal | met |", "|---|---|---|---|"]
    for r in cal.rates:
        goal = "—" if r.goal is None else f"≥ {r.goal * 100:.0f} %"
        met = {True: "yes", False: "**no**", None: "—"}[r.meets_goal]
        out.append(f"| {r.what}{f' ({r.detail})' if r.detail else ''} | {_pct(r)} | {goal} "
                   f"| {met} |")
    if cal.effects:
        out += ["", "| knob | pairs | measured effect (B / A, median) |", "|---|---|---|"]
        for e in cal.effects.values():
            eff = e["median_new_over_old"]
            out.append(f"| {WHAT[e['knob']].format(v=e['value'])} | {e['pairs']} | "
                       f"{'—' if eff is None else f'{eff:.3f}'} |")
    if cal.gate_counts:
        statuses = ("passed", "undecided", "failed", "not measured")
        out += ["", "| gate (A runs) | " + " | ".join(statuses) + " |",
                "|---|" + "---|" * len(statuses)]
        for gate, counts in cal.gate_counts.items():
            out.append(f"| {gate} | " + " | ".join(str(counts.get(s, 0)) for s in statuses)
                       + " |")
    if cal.false_alarms:
        out += ["", "A/A rows `compare` flagged: "
                + ", ".join(f"{k} ×{n}" for k, n in cal.false_alarms.items())]
    return "\n".join(out) + "\n"
