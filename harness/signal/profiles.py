"""How long and how big the signal suite runs, per run profile (same names as the chaos ones).

`smoke` is what a plain `pytest` / `harness test` runs (CI's own test job): small and short.
`ci` has the 100 companies the issue asks for. A run's phases: setup (pairing, first message in
every conversation: not measured) -> warmup -> fault held `outage_s` (none for `healthy`) ->
recovery (traffic goes on) -> stop and drain -> new pod -> final read and check.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from types import MappingProxyType

from harness.errors import ConfigError
from harness.signal.workload import SignalConfig

SCENARIOS = ("healthy", "sever")


@dataclass(frozen=True)
class SignalParams:
    profile: str
    companies: int
    warmup_s: float
    outage_s: float
    recovery_s: float
    settle_s: float = 15.0  # flush() bound before the new pod and the final read
    workload: SignalConfig = field(default_factory=SignalConfig)


PROFILES = MappingProxyType({p.profile: p for p in (
    SignalParams("smoke", 12, warmup_s=2.0, outage_s=3.0, recovery_s=3.0),
    SignalParams("quick", 50, warmup_s=3.0, outage_s=5.0, recovery_s=5.0),
    SignalParams("ci", 100, warmup_s=3.0, outage_s=5.0, recovery_s=5.0),
    SignalParams("thorough", 100, warmup_s=5.0, outage_s=15.0, recovery_s=10.0),
)})
DEFAULT_PROFILE = "smoke"
RUN_PROFILES = {"quick": "quick", "ci": "ci", "predeploy": "ci", "thorough": "thorough"}


def signal_params(profile: str, **changes: object) -> SignalParams:
    if profile not in PROFILES:
        raise ConfigError(f"unknown signal profile {profile!r}",
                          hint=f"use one of: {', '.join(PROFILES)}")
    return replace(PROFILES[profile], **changes)  # type: ignore[arg-type]
