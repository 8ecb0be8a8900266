"""The suites `authstate-harness run` can run, by name, and which suite a test belongs to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from harness.errors import ConfigError


@dataclass(frozen=True)
class Suite:
    name: str
    paths: tuple[str, ...]  # relative to the repository root; a test belongs to the first match
    description: str
    default_target: str  # what it runs against without --target


SUITES: Mapping[str, Suite] = MappingProxyType({s.name: s for s in (
    Suite("property", ("scenarios/property",),
          "fidelity: codec, store round trips through PostgreSQL, stateful model, company ids, "
          "multi-file export/import, real Baileys interop", "reference"),
    Suite("bench", ("scenarios/bench",),
          "speed as ratios to a baseline measured in the same run: store vs raw asyncpg, "
          "fault proxy vs direct, resilient vs plain store, journal replay", "reference"),
    Suite("chaos", ("scenarios/chaos",),
          "PostgreSQL severed, hung, killed, restarted, exhausted, read-only under 100-company "
          "traffic: MTTD, RTO, lost / stale writes (checker over an operation history)",
          "resilient"),
    Suite("load", ("scenarios/load",),
          "Locust, one user per company, Baileys traffic profiles: HDR latency per operation "
          "(p50-p99.9, raw and coordinated-omission corrected), errors, gevent-asyncio bridge "
          "ratio", "reference"),
    Suite("signal", ("scenarios/signal",),
          "real Signal conversations (Baileys' own libsignal, 1:1 and groups) through the store, "
          "healthy and with PostgreSQL severed: undecryptable messages by libsignal error, "
          "re-established sessions, a new pod continuing every conversation", "resilient"),
)})
DEFAULT_SUITES: tuple[str, ...] = ("property", "bench", "chaos", "load")


def select_suites(names: Sequence[str] | None) -> list[Suite]:
    """The named suites in registry order; all defaults when `names` is empty."""
    wanted = list(names or DEFAULT_SUITES)
    unknown = [n for n in wanted if n not in SUITES]
    if unknown:
        raise ConfigError(f"unknown suite(s): {', '.join(unknown)}",
                          hint=f"choose from: {', '.join(SUITES)}")
    return [s for name, s in SUITES.items() if name in wanted]


def suite_of(nodeid: str, suites: Sequence[Suite]) -> str | None:
    for suite in suites:
        if any(nodeid == p or nodeid.startswith(p.rstrip("/") + "/") for p in suite.paths):
            return suite.name
    return None
