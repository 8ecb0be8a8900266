"""Fault windows and store status samples in one shape, on the history's clock (monotonic ns).

Recovery, availability, phase latency and the timeline all start from the same windows; they
come as `FaultWindow`s (monotonic seconds), plain ``(kind, injected_ns, cleared_ns)`` tuples or
the history's own nemesis events. Overlapping windows (a fault injected while another is
active) are merged into one *episode*: recovery is measured from the moment the last of them
cleared, since the store cannot be normal before that.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.metrics.fault_timeline import FaultWindow

NS = 1_000_000_000


@dataclasses.dataclass(frozen=True)
class Window:
    kind: str
    injected_ns: int
    cleared_ns: int | None   # None: never cleared

    def covers(self, t_ns: int) -> bool:
        return self.injected_ns <= t_ns and (self.cleared_ns is None or t_ns <= self.cleared_ns)

    def overlaps(self, start_ns: int, end_ns: int) -> bool:
        """Whether the window is active at any moment of [start_ns, end_ns)."""
        return self.injected_ns < end_ns and (self.cleared_ns is None
                                              or self.cleared_ns >= start_ns)


WindowLike = Window | FaultWindow | Sequence[Any]


def to_ns(seconds: float) -> int:
    return round(seconds * NS)


def as_window(window: WindowLike) -> Window:
    if isinstance(window, Window):
        return window
    if isinstance(window, FaultWindow):
        cleared = window.cleared_at
        return Window(window.kind, to_ns(window.injected_at.monotonic),
                      None if cleared is None else to_ns(cleared.monotonic))
    kind, injected, cleared = window
    return Window(str(kind), int(injected), None if cleared is None else int(cleared))


def episodes(windows: Iterable[WindowLike]) -> list[Window]:
    """Windows sorted by injection, overlapping ones merged (kinds joined with '+')."""
    merged: list[Window] = []
    for w in sorted((as_window(w) for w in windows), key=lambda w: w.injected_ns):
        if merged:
            last = merged[-1]
            if last.cleared_ns is None or w.injected_ns <= last.cleared_ns:
                cleared = (None if last.cleared_ns is None or w.cleared_ns is None
                           else max(last.cleared_ns, w.cleared_ns))
                kinds = last.kind.split("+")
                kind = last.kind if w.kind in kinds else f"{last.kind}+{w.kind}"
                merged[-1] = Window(kind, last.injected_ns, cleared)
                continue
        merged.append(w)
    return merged


StatusSample = tuple[int, Mapping[str, Any]]


def status_sample(status: Mapping[str, Any]) -> dict[str, Any]:
    """Flatten a store's ``status()`` into ``{"breaker", "journal_depth", "mode"}`` (what a
    status sample holds); flat input passes through."""
    breaker = status.get("breaker")
    if isinstance(breaker, Mapping):
        breaker = breaker.get("state")
    depth = status.get("journal_depth")
    journal = status.get("journal")
    if depth is None and isinstance(journal, Mapping):
        depth = journal.get("depth")
    return {"breaker": breaker, "journal_depth": depth, "mode": status.get("mode")}


def breaker_transitions(*statuses: Mapping[str, Any]) -> list[tuple[int, str]]:
    """``(t_ns, state)`` from the ``transitions`` ring of one or more ``status()`` snapshots
    (taken over time, since the ring is bounded), de-duplicated and sorted."""
    seen: set[tuple[int, str]] = set()
    for status in statuses:
        for item in status.get("transitions") or ():
            seen.add((to_ns(float(item["at"])), str(item["state"])))
    return sorted(seen)


def normalize_samples(samples: Iterable[StatusSample]) -> list[tuple[int, dict[str, Any]]]:
    return sorted(((int(t), status_sample(s)) for t, s in samples), key=lambda x: x[0])


def breaker_states(samples: Sequence[tuple[int, Mapping[str, Any]]],
                   transitions: Iterable[tuple[int, str]] = ()) -> list[tuple[int, str]]:
    """The breaker's state changes, from its exact transitions and the states status samples
    saw (a sample is the state at its time, so both merge by time; samples fill in before the
    bounded transition ring begins). Empty when the target reports no breaker."""
    points = sorted([(int(t), str(s)) for t, s in transitions]
                    + [(t, str(s["breaker"])) for t, s in samples
                       if s.get("breaker") is not None], key=lambda p: p[0])
    changes: list[tuple[int, str]] = []
    for t, state in points:
        if not changes or changes[-1][1] != state:
            changes.append((t, state))
    return changes
