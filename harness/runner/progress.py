"""Progress of a run: live bars per suite on a terminal, plain lines in CI logs.

Failures are printed the moment they happen (above the bars), so a long run never hides a red
test until the end. Plain mode (CI set, or output not a terminal) prints a heartbeat per suite
every `HEARTBEAT` seconds and a line when a suite completes.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from harness.runner.outcomes import FAILING, RunOutcomes, TestOutcome

HEARTBEAT = 30.0


class RunProgress:
    def __init__(self, console: Console, outcomes: RunOutcomes, *, live: bool) -> None:
        self.console = console
        self.outcomes = outcomes
        self.live = live
        self._progress = Progress(
            SpinnerColumn(), TextColumn("[bold]{task.description:<10}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
            console=console, transient=False, disable=not live)
        self._tasks: dict[str, TaskID] = {}
        self._collecting: TaskID | None = None
        self._announced: set[str] = set()
        self._last_beat = time.monotonic()
        self._started = time.monotonic()

    def __enter__(self) -> RunProgress:
        self._progress.start()
        self._collecting = self._progress.add_task("collecting", total=None, status="")
        if not self.live:
            self.console.print("collecting tests ...", highlight=False)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._progress.stop()

    def update(self, events: list[dict[str, Any]]) -> None:
        finished = self.outcomes.feed(events)
        if self._collecting is not None and self.outcomes.collected:
            self._progress.remove_task(self._collecting)
            self._collecting = None
            for name, suite in self.outcomes.suites.items():
                self._tasks[name] = self._progress.add_task(name, total=len(suite.tests),
                                                            status="")
                if not self.live:
                    self.console.print(f"{name}: {len(suite.tests)} tests", highlight=False)
        for test in finished:
            if test.outcome in FAILING:
                self._report_failure(test)
        for name, suite in self.outcomes.suites.items():
            if name not in self._tasks:
                continue
            counts = suite.counts
            done = len(suite.tests) - counts["pending"]
            bad = counts["failed"] + counts["error"]
            status = f"[red]{bad} failed[/]" if bad else ""
            self._progress.update(self._tasks[name], completed=done, status=status)
            if not self.live and done == len(suite.tests) and name not in self._announced:
                self._announced.add(name)
                self.console.print(f"{name}: done, {_counts_text(counts)} "
                                   f"({suite.duration:.1f}s)", highlight=False)
        if not self.live and time.monotonic() - self._last_beat >= HEARTBEAT:
            self._last_beat = time.monotonic()
            parts = [f"{n} {len(s.tests) - s.counts['pending']}/{len(s.tests)}"
                     for n, s in self.outcomes.suites.items() if n not in self._announced]
            if parts:
                self.console.print(f"[{time.monotonic() - self._started:.0f}s] "
                                   + ", ".join(parts), highlight=False)

    def _report_failure(self, test: TestOutcome) -> None:
        first = (test.message or "").strip().splitlines()[:1]
        detail = f": {escape(first[0])}" if first else ""
        label = "ERROR" if test.outcome == "error" else "FAILED"
        self._progress.console.print(f"[red]{label}[/] {escape(test.nodeid)}{detail}",
                                     highlight=False)


def _counts_text(counts: dict[str, int]) -> str:
    parts = [f"{n} {k}" for k, n in counts.items() if n and k != "pending"]
    return ", ".join(parts) or "nothing ran"
