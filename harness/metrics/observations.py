"""What an outside observer saw of durable state while a scenario ran.

The judge takes nothing on the store's word: an observer with its own connection (never through
the fault proxy, never through the store) reads the keys that matter every ~100 ms and records
here what each read returned, as digests (never values), with the read's start and end times on
the history's clock (monotonic ns). A value seen by a read was durable by its ``end_ns``: when
the read ended, or, for a SQL read, when its statement was sent (READ COMMITTED: a statement
sees what was committed when it started); a value absent from a read that started at ``s`` was
not durable at ``s``.

Besides key reads it holds:
- probes of the database path (``Probe``): did the fault reach the path the store uses
  (refused, hung, read-only ...)? A scenario whose fault never did proved nothing;
- groups (``GroupSample``): how many keys of one multi-key write were visible at once (an
  812-pre-key write must show 0 or 812 of them, never a part).

Pure data: the analyses are in `harness.metrics.durability`.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.metrics.history import KeyRef

StateKey = tuple[str, KeyRef]  # (company, key ref); creds are harness.metrics.history.CREDS


@dataclasses.dataclass(frozen=True, slots=True)
class Seen:
    """One read of one key: the value's digest (None: absent) between `start_ns` and `end_ns`."""

    start_ns: int
    end_ns: int
    digest: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class Probe:
    """One probe of the database path the target uses: `down` when it was refused, hung, cut
    or read-only; `detail` says how (an error class, "timeout", "read-only")."""

    start_ns: int
    end_ns: int
    down: bool
    detail: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class GroupSample:
    """How many keys of one multi-key write held its values in one read."""

    start_ns: int
    end_ns: int
    applied: int
    total: int


@dataclasses.dataclass
class Group:
    """A multi-key write watched for atomicity (reset-mid-write's 812 pre-keys)."""

    name: str
    company: str
    values: Mapping[KeyRef, str | None]  # the write's digest per key ref
    op: int | None = None  # the write's op index, when known
    samples: list[GroupSample] = dataclasses.field(default_factory=list)

    def torn_samples(self) -> list[GroupSample]:
        return [s for s in self.samples if 0 < s.applied < s.total]


class Observations:
    """Every read the observer made, per (company, key), in time order."""

    def __init__(self, *, mode: str = "sql", interval_s: float = 0.1) -> None:
        self.mode = mode
        self.interval_s = interval_s
        self._seen: dict[StateKey, list[Seen]] = {}
        self._ends: dict[StateKey, list[int]] = {}
        self.probes: list[Probe] = []
        self.groups: list[Group] = []
        self.reads = 0  # read rounds (ticks that read something)
        self.keys_read = 0
        self.failed_reads = 0  # rounds that raised (the database itself away: process faults)
        self.read_seconds: list[float] = []  # duration of each round, for the report
        self.final_at_ns: int | None = None

    # -- recording ---------------------------------------------------------------------------
    def record(self, start_ns: int, end_ns: int,
               values: Mapping[StateKey, str | None]) -> None:
        """One read round: `values` holds every key asked for (None: absent)."""
        self.reads += 1
        self.keys_read += len(values)
        self.read_seconds.append((end_ns - start_ns) / 1e9)
        for key, found in values.items():
            self._seen.setdefault(key, []).append(Seen(start_ns, end_ns, found))
            self._ends.setdefault(key, []).append(end_ns)

    def record_final(self, at_ns: int, values: Mapping[StateKey, str | None]) -> None:
        """The final read (after the run settled) as the last observation of every key."""
        self.final_at_ns = at_ns
        for key, found in values.items():
            self._seen.setdefault(key, []).append(Seen(at_ns, at_ns, found))
            self._ends.setdefault(key, []).append(at_ns)

    def failed_round(self) -> None:
        self.failed_reads += 1

    def probe(self, probe: Probe) -> None:
        self.probes.append(probe)

    def group(self, group: Group) -> Group:
        self.groups.append(group)
        return group

    # -- reading -----------------------------------------------------------------------------
    def keys(self) -> Iterable[StateKey]:
        return self._seen.keys()

    def seen(self, key: StateKey) -> Sequence[Seen]:
        return self._seen.get(key, ())

    def seen_from(self, key: StateKey, end_ns: int) -> Sequence[Seen]:
        """Reads of `key` that ended at or after `end_ns`."""
        ends = self._ends.get(key)
        if not ends:
            return ()
        return self._seen[key][bisect_left(ends, end_ns):]

    def probes_in(self, start_ns: int, end_ns: int) -> list[Probe]:
        """Probes that ran entirely inside [start_ns, end_ns]."""
        return [p for p in self.probes if p.start_ns >= start_ns and p.end_ns <= end_ns]

    def summary(self) -> dict[str, Any]:
        """Small and JSON-ready: how the observer read, how often, how fast."""
        rounds = sorted(self.read_seconds)
        return {"mode": self.mode, "interval_s": self.interval_s, "rounds": self.reads,
                "keys_read": self.keys_read, "failed_rounds": self.failed_reads,
                "keys_watched": len(self._seen),
                "round_ms_p50": _ms(rounds, 0.5), "round_ms_max": _ms(rounds, 1.0),
                "probes": len(self.probes), "probes_down": sum(p.down for p in self.probes),
                "groups": [{"name": g.name, "company": g.company, "keys": len(g.values),
                            "samples": len(g.samples), "torn_samples": len(g.torn_samples())}
                           for g in self.groups]}


def _ms(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    return round(1000 * values[min(len(values) - 1, int(q * (len(values) - 1)))], 1)
