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

    def __post_init__(self) -> None:
        if self.better not in ("higher", "lower"):
            raise ValueError(f"figure {self.name!r}: better must be 'higher' or 'lower'")
        if self.value is not None and math.isnan(self.value):
            raise ValueError(f"figure {self.name!r}: value is NaN (use None for not measured)")

    @property
    def higher_is_better(self) -> bool:
        return self.better == "higher"

    def meets(self, bound: float) -> bool:
        """Whether the value is on the good side of `bound` (a missing value never is)."""
        if self.value is None:
            return False
        return self.value >= bound if self.higher_is_better else self.value <= bound

    def to_dict(self) -> dict[str, Any]:
        return {"suite": self.suite, "name": self.name, "value": self.value, "unit": self.unit,
                "better": self.better, "gate": self.gate, "threshold": self.threshold,
                "gated": self.gated, "notes": self.notes, "context": dict(self.context)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Figure:
        value = data.get("value")
        threshold = data.get("threshold")
        return cls(suite=str(data["suite"]), name=str(data["name"]),
                   value=None if value is None else float(value), unit=str(data["unit"]),
                   better=data["better"], gate=data.get("gate"),
                   threshold=None if threshold is None else float(threshold),
                   gated=bool(data.get("gated", True)), notes=str(data.get("notes", "")),
                   context=dict(data.get("context") or {}))
