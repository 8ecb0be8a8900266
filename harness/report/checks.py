"""The pass/fail checks of a run: every suite green, every gate measured and met.

Gates are checked from figures only (whatever suite recorded them). A gate whose suite ran but
recorded no gated figure for it (a benchmark crashed or was deselected, a scenario never got
that far) is a failed check, "not measured", never a silent pass: the point of a gate is that a
missing number is visible. A gate whose suite did not run at all -- not selected, or every
test of it deselected by `--pytest-args` -- is "not applicable": listed, not failing. So is a
gate whose suite recorded only figures saying why it does not apply to this target
(`context["not_applicable"]`, e.g. the in-process store benchmarks for a `node:` target).

A gated figure with an interval (see harness.metrics.intervals) is judged by it: the gate
passes when the whole interval is on the good side of the bound, fails when the whole interval
misses it, and is `undecided` when it straddles the bound (the suite already measured more,
within its budget). Whether an undecided gate fails the run is the configured policy
(`undecided = "warn" | "fail"`, `--undecided`): with "warn" it is reported and does not block.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.config import KNOWN_GATES, HarnessConfig
from harness.metrics.figures import Figure
from harness.metrics.intervals import margin
from harness.report.summary import SuiteSummary

PASSING = frozenset({"passed", "not applicable"})
STATUSES = ("passed", "failed", "undecided", "not measured", "not applicable")
_RANK = {"failed": 0, "undecided": 1, "passed": 2}


@dataclass(frozen=True)
class Check:
    name: str
    kind: str  # "suite" | "gate"
    status: str  # one of STATUSES
    detail: str
    value: float | None = None
    threshold: float | None = None
    op: str | None = None
    interval: tuple[float, float] | None = None
    policy: str | None = None  # for an undecided gate: "warn" (does not block) | "fail"

    @property
    def passed(self) -> bool:
        """Whether the run may pass with this check (a gate of a suite not run does not block;
        an undecided gate blocks only under the "fail" policy)."""
        return self.status in PASSING or (self.status == "undecided" and self.policy == "warn")

    @property
    def warning(self) -> bool:
        """Passed only because the policy lets an undecided gate through: say so loudly."""
        return self.status == "undecided" and self.passed

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def suite_checks(suites: Iterable[SuiteSummary], *,
                 deselected: Collection[str] = ()) -> list[Check]:
    """One check per suite; `deselected`: suites whose every test the run's pytest arguments
    filtered away (not applicable, not a pass)."""
    checks = []
    for suite in suites:
        if suite.name in deselected:
            checks.append(Check(f"suite {suite.name}", "suite", "not applicable",
                                "every test deselected by --pytest-args"))
            continue
        c = suite.counts
        bad = c["failed"] + c["error"]
        if suite.passed:
            detail = f"{c['passed']} passed" + (f", {c['skipped']} skipped" if c["skipped"] else "")
        elif bad:
            detail = f"{bad} of {suite.tests} tests failed"
        else:
            detail = f"{c['pending']} of {suite.tests} tests never finished"
        checks.append(Check(f"suite {suite.name}", "suite",
                            "passed" if suite.passed else "failed", detail))
    return checks


def bound_of(figure: Figure, config: HarnessConfig) -> float | None:
    """The bound a figure is judged against: its own threshold, else its gate's value."""
    if figure.threshold is not None:
        return figure.threshold
    if figure.gate is not None and figure.gate in config.gates:
        return config.gate(figure.gate)
    return None


def judged(figure: Figure, config: HarnessConfig) -> dict[str, Any]:
    """The figure as report.json lists it: its fields, the bound, whether it met it (None when
    undecided or unbounded) and the decision (passed | failed | undecided | None)."""
    bound = bound_of(figure, config)
    decision = None if bound is None else figure.decide(bound)
    return {**figure.to_dict(), "bound": bound, "decision": decision,
            "passed": None if decision in (None, "undecided") else decision == "passed"}


def _margin(figure: Figure, bound: float) -> float:
    """How far the interval's worse end is on the good side of its bound (negative: it
    reaches past it); a missing value is worst."""
    return margin(figure.value, figure.interval, bound, higher_is_better=figure.higher_is_better)


def fmt_interval(interval: tuple[float, float] | None, unit: str) -> str:
    if interval is None:
        return ""
    lo, hi = interval
    digits = ".3f" if unit == "x" else ".4g"
    return f" [95 % {lo:{digits}}..{hi:{digits}}]"


def _more(figure: Figure) -> str:
    """What measuring more did, when the suite had to (context["measured_more"])."""
    more = figure.context.get("measured_more")
    if not isinstance(more, dict) or not more.get("added"):
        return ""
    return f"; measured more: +{more['added']} {more.get('what', 'samples')}"


def _shown(figure: Figure, bound: float, op: str) -> str:
    if figure.value is None:
        return f"{figure.name}: not measured ({op} {bound:g})"
    metric = figure.context.get("metric")
    interval = fmt_interval(figure.interval, figure.unit)
    if figure.unit == "x":
        what = f"{metric} ratio" if metric else "ratio"
        return f"{figure.name}: {what} {figure.value:.3f}{interval} ({op} {bound:g}){_more(figure)}"
    return (f"{figure.name}: {figure.value:.4g} {figure.unit}{interval} ({op} {bound:g})"
            f"{_more(figure)}")


def gate_checks(config: HarnessConfig, figures: Sequence[Figure],
                suites_run: Collection[str], *, deselected: Collection[str] = (),
                selected: Sequence[str] = ()) -> list[Check]:
    """One check per known gate, from the gated figures recorded for it.

    Every gated figure of a gate must meet its bound (`figure.threshold`, else the configured
    value); the detail shows the worst one. Figures naming a gate nobody knows fail the run:
    a typo in a suite must not turn a gate off.
    """
    checks = []
    for name, spec in KNOWN_GATES.items():
        threshold = config.gate(name)
        if spec.suite in deselected:
            only = " ".join(f"--suite {s}" for s in selected)
            checks.append(Check(
                f"gate {name}", "gate", "not applicable",
                f"every {spec.suite} test was deselected by --pytest-args"
                + (f" (to run only what the filter keeps, add {only})" if only else ""),
                None, threshold, spec.op))
            continue
        measured = [f for f in figures if f.gate == name and f.gated]
        if spec.suite not in suites_run and not (
                measured and any(s in suites_run for s in spec.also)):
            checks.append(Check(f"gate {name}", "gate", "not applicable",
                                f"the {spec.suite} suite did not run",
                                None, threshold, spec.op))
            continue
        reasons = sorted({str(f.context["not_applicable"]) for f in measured
                          if f.context.get("not_applicable")})
        if measured and len(reasons) and all(f.context.get("not_applicable") for f in measured):
            checks.append(Check(f"gate {name}", "gate", "not applicable", "; ".join(reasons),
                                None, threshold, spec.op))
            continue
        measured = [f for f in measured if not f.context.get("not_applicable")]
        if not measured:
            checks.append(Check(f"gate {name}", "gate", "not measured",
                                f"not recorded by the {spec.suite} suite: {spec.doc}",
                                None, threshold, spec.op))
            continue
        bounds = [threshold if f.threshold is None else f.threshold for f in measured]
        decided = [(f.decide(b), f, b) for f, b in zip(measured, bounds, strict=True)]
        status, worst, bound = min(decided, key=lambda d: (_RANK[d[0]], _margin(d[1], d[2])))
        detail = _shown(worst, bound, spec.op)
        if len(measured) > 1:
            detail += f"; worst of {len(measured)}"
        policy = None
        if status == "undecided":
            policy = config.judging.undecided
            detail += (f"; undecided: the interval straddles the gate "
                       f"({'fails the run' if policy == 'fail' else 'warning only'}, "
                       f"undecided = \"{policy}\")")
        checks.append(Check(f"gate {name}", "gate", status, detail, worst.value, bound, spec.op,
                            worst.interval, policy))
    unknown = sorted({f.gate for f in figures if f.gate and f.gate not in KNOWN_GATES})
    for name in unknown:
        checks.append(Check(f"gate {name}", "gate", "failed",
                            f"a figure names gate {name!r}, which does not exist (known: "
                            f"{', '.join(sorted(KNOWN_GATES))})"))
    return checks


def unmeasurable(suites: Iterable[SuiteSummary], checks: Sequence[Check]) -> str | None:
    """Why the run cannot judge some gates at all, or None: a suite whose every test skipped
    (e.g. every chaos scenario needs a role the --dsn user may not create, or a process the
    harness does not own) measured nothing, so its gates are "not measured" for a reason that
    is about this environment, not the store. That is a harness error (exit 2, with the skip
    reasons, which say how to enable the tests), never a verdict (exit 1) and never a pass."""
    problems = []
    for suite in suites:
        c = suite.counts
        if not suite.tests or c["skipped"] != suite.tests:
            continue
        gates = [ch.name.removeprefix("gate ") for ch in checks
                 if ch.kind == "gate" and ch.status == "not measured"
                 and KNOWN_GATES.get(ch.name.removeprefix("gate ")) is not None
                 and KNOWN_GATES[ch.name.removeprefix("gate ")].suite == suite.name]
        if not gates:
            continue
        reasons = "; ".join(sorted(suite.skip_reasons)) or "no reason given"
        problems.append(f"every {suite.name} test was skipped, so gate(s) {', '.join(gates)} "
                        f"could not be measured on this server: {reasons}")
    return "; ".join(problems) or None
