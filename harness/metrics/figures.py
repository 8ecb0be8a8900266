"""Figures: the one typed way a measured number travels from a suite into the report and gates.

Every suite that measures something (benchmark ratios, chaos MTTD / RTO / lost writes, later
load percentiles) records `Figure`s; the main job reads them back, lists them in `report.json`
and checks each gated one against its gate. One channel, one gate mechanism: a new suite adds
figures, not a new file format or a new checker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.metrics.intervals import Decision, Interval, decide

Better = Literal["higher", "lower"]


@dataclass(frozen=True)
class Figure:
    """One measured number and how to judge it.

    `value` None means "should have been measured but was not" (a crashed benchmark, a scenario
    that never recovered): a gated figure without a value never passes. `threshold` overrides the
    gate's configured bound for this figure only, when the figure has its own documented bound
    (e.g. black-hole MTTD is bounded by the target's operation deadline + 0.2 s); `notes` says
    why. `context` carries what a reader needs to trust the number (sides of a ratio, rounds,
    sample counts); it must never hold key material.

    `interval` (low, high) is a ~95 % interval of the value from the run's own independent
    samples (paired benchmark rounds, repetitions of a chaos fault, time batches of a load run;
    see harness.metrics.intervals); `context["interval_basis"]` says which. None: the run could
    not estimate one (a single repetition, a count), and the value alone is judged.
    """

    suite: str
    name: str
    value: float | None
    unit: str
    better: Better
    gate: str | None = None
    threshold: float | None = None
    gated: bool = True
    notes: str = ""
    context: Mapping[str, Any] = field(default_factory=dict)
    interval: Interval | None = None

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower"):
            raise ValueError(f"figure {self.name!r}: better must be 'higher' or 'lower'")
        if self.value is not None and math.isnan(self.value):
            raise ValueError(f"figure {self.name!r}: value is NaN (use None for not measured)")
        if self.interval is not None:
            lo, hi = (float(x) for x in self.interval)
            if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
                raise ValueError(f"figure {self.name!r}: interval {self.interval!r} is not "
                                 "(low, high) with low <= high")
            object.__setattr__(self, "interval", (lo, hi))

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"

    def meets(self, bound: float) -> bool:
        """Whether the value is on the good side of `bound` (a missing value never is)."""
        if self.value is None:
            return False
        return self.value >= bound if self.higher_is_better else self.value <= bound

    def decide(self, bound: float) -> Decision:
        """passed (the interval clears `bound`), failed (the whole interval misses it) or
        undecided (it straddles it); without an interval the value alone decides."""
        return decide(self.value, self.interval, bound, higher_is_better=self.higher_is_better)

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "name": self.name, "value": self.value, "unit": self.unit,
                "better": self.better, "gate": self.gate, "threshold": self.threshold,
                "gated": self.gated, "notes": self.notes, "context": dict(self.context),
                "interval": None if self.interval is None else list(self.interval)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Figure:
        value = data.get("value")
        threshold = data.get("threshold")
        interval = data.get("interval")
        return cls(suite=str(data["suite"]), name=str(data["name"]),
                   value=None if value is None else float(value), unit=str(data["unit"]),
                   better=data["better"], gate=data.get("gate"),
                   threshold=None if threshold is None else float(threshold),
                   gated=bool(data.get("gated", True)), notes=str(data.get("notes", "")),
                   context=dict(data.get("context") or {}),
                   interval=(float(interval[0]), float(interval[1]))
                   if isinstance(interval, list | tuple) and len(interval) == 2
                   and None not in interval else None)
