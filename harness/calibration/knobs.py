"""The calibration knobs: how much slower the calibration wrapper target makes the store.

Read from the environment variable HARNESS_CALIBRATION_SLOWDOWN by the wrapper target
(`harness.calibration.slowed`), in every process that opens it (the child pytest, Locust and its
workers: the variable is not an AUTHSTATE_ one, so the load runner passes it on). Unset or empty:
the wrapper is transparent. Test-only: never set it for a run whose figures you mean.

    HARNESS_CALIBRATION_SLOWDOWN="replay=1.3,rto=0.5,p99=2"

- replay=F: a journal found at open drains F times slower as `flush()` sees it (F >= 1);
- rto=S: writes wait until S seconds after the store was last seen degraded (RTO + S s);
- p99=F: every call takes F times as long (each percentile x F; more in the open model).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from harness.errors import ConfigError

ENV = "HARNESS_CALIBRATION_SLOWDOWN"
NAMES = ("replay", "rto", "p99")
DEFAULT_SLOWDOWN = {"replay": 1.3, "rto": 0.5, "p99": 2.0}
WHAT = {"replay": "journal replay {v:g}x slower", "rto": "RTO +{v:g} s",
        "p99": "every call {v:g}x slower (p99 x{v:g})"}


@dataclass(frozen=True)
class Knobs:
    replay: float = 1.0
    rto: float = 0.0
    p99: float = 1.0

    @property
    def active(self) -> bool:
        return self != Knobs()

    def to_env(self) -> str:
        parts = [f"replay={self.replay:g}" if self.replay != 1.0 else "",
                 f"rto={self.rto:g}" if self.rto else "",
                 f"p99={self.p99:g}" if self.p99 != 1.0 else ""]
        return ",".join(p for p in parts if p)


def parse(text: str | None) -> Knobs:
    """`replay=1.3,rto=0.5,p99=2` (any subset); ConfigError for anything else."""
    return Knobs(**parse_values(text))


def parse_values(text: str | None) -> dict[str, float]:
    """The knobs a spec names, with their values (those it does not name are absent)."""
    values: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, raw = part.partition("=")
        name = name.strip()
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not sep or name not in NAMES or not value >= (0.0 if name == "rto" else 1.0):
            raise ConfigError(f"{ENV}: {part.strip()!r} is not a knob",
                              hint="e.g. replay=1.3 (>= 1), rto=0.5 (seconds >= 0), p99=2 "
                                   "(>= 1), comma-separated")
        values[name] = value
    return values


def from_env(env: Mapping[str, str] | None = None) -> Knobs:
    return parse((os.environ if env is None else env).get(ENV))
