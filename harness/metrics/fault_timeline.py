"""When each fault was in effect: the windows that MTTD, RTO and the report's shading start from.

A window opens *before* the request that injects the fault is sent (the fault may act from
then on) and closes *after* the request that clears it returned (it has surely stopped). So
the window is never shorter than the fault: MTTD is not flattered by a late start and RTO is
counted from a moment the fault was certainly gone. Both clocks are kept: `monotonic` to line
up with operation histories (CLOCK_MONOTONIC, shared by processes on one host), `wall` for
people and reports.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Instant:
    monotonic: float
    wall: float

    @classmethod
    def now(cls) -> Instant:
        return cls(time.monotonic(), time.time())

    def to_dict(self) -> dict[str, float]:
        return {"monotonic": self.monotonic, "wall": self.wall}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Instant:
        return cls(float(data["monotonic"]), float(data["wall"]))


@dataclasses.dataclass
class FaultWindow:
    kind: str  # "sever", "blackhole", "latency", "reset_peers", "bandwidth", "limit_data", "flap"
    target: str  # what it acted on, e.g. the proxy name
    params: dict[str, Any]
    injected_at: Instant
    cleared_at: Instant | None = None

    @property
    def active(self) -> bool:
        return self.cleared_at is None

    @property
    def duration(self) -> float | None:
        """Seconds the window lasted (monotonic), None while it is open."""
        if self.cleared_at is None:
            return None
        return self.cleared_at.monotonic - self.injected_at.monotonic

    def covers(self, monotonic: float) -> bool:
        end = self.cleared_at.monotonic if self.cleared_at else float("inf")
        return self.injected_at.monotonic <= monotonic <= end

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "target": self.target, "params": dict(self.params),
                "injected_at": self.injected_at.to_dict(),
                "cleared_at": self.cleared_at.to_dict() if self.cleared_at else None,
                "duration": self.duration}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultWindow:
        cleared = data.get("cleared_at")
        return cls(kind=data["kind"], target=data["target"], params=dict(data["params"]),
                   injected_at=Instant.from_dict(data["injected_at"]),
                   cleared_at=Instant.from_dict(cleared) if cleared else None)


class FaultTimeline:
    """An ordered, thread-safe list of fault windows (a flapping fault records from a thread)."""

    def __init__(self, windows: list[FaultWindow] | None = None) -> None:
        self._windows = list(windows or ())
        self._lock = threading.Lock()

    def open(self, kind: str, target: str, params: Mapping[str, Any] | None = None,
             at: Instant | None = None) -> FaultWindow:
        window = FaultWindow(kind, target, dict(params or {}), at or Instant.now())
        with self._lock:
            self._windows.append(window)
        return window

    def close(self, window: FaultWindow, at: Instant | None = None) -> FaultWindow:
        with self._lock:
            if window.cleared_at is None:
                window.cleared_at = at or Instant.now()
        return window

    @property
    def windows(self) -> list[FaultWindow]:
        with self._lock:
            return list(self._windows)

    def active(self) -> list[FaultWindow]:
        return [w for w in self.windows if w.active]

    def at(self, monotonic: float) -> list[FaultWindow]:
        """Windows in effect at a monotonic time (e.g. an operation's invoke time)."""
        return [w for w in self.windows if w.covers(monotonic)]

    def __iter__(self) -> Iterator[FaultWindow]:
        return iter(self.windows)

    def __len__(self) -> int:
        return len(self.windows)

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "windows": [w.to_dict() for w in self.windows]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def write_json(self, path: str | Path) -> Path:
        target = Path(path)
        target.write_text(self.to_json() + "\n")
        return target

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultTimeline:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ValueError(f"unsupported fault timeline schema_version {version!r} "
                             f"(expected {SCHEMA_VERSION})")
        return cls([FaultWindow.from_dict(w) for w in data["windows"]])

    @classmethod
    def from_json(cls, text: str) -> FaultTimeline:
        return cls.from_dict(json.loads(text))
