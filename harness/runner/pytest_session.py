"""Run the selected suites in a child pytest and stream its events back.

Why a child process: the suites own event loops, Hypothesis state and module-level fixtures; a
child keeps them out of the CLI, lets its whole output go (scrubbed) into `pytest.log` while the
CLI shows a progress display, and makes Ctrl-C handling simple (the child gets the same SIGINT,
finishes its teardown and reports). PostgreSQL is started by the parent and handed over through
`AUTHSTATE_DSN` (never on the command line, where other users could read a password).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from harness.report.redact import scrub
from harness.runner.suites import Suite

# pytest's exit codes, for messages
PYTEST_EXIT = {0: "all tests passed", 1: "some tests failed", 2: "interrupted",
               3: "internal error", 4: "usage error", 5: "no tests collected"}


@dataclass(frozen=True)
class Artifacts:
    """Files of one run folder; names are part of the report contract."""

    out_dir: Path

    @property
    def pytest_log(self) -> Path:
        return self.out_dir / "pytest.log"

    @property
    def events(self) -> Path:
        return self.out_dir / "events.jsonl"

    @property
    def junit(self) -> Path:
        return self.out_dir / "junit.xml"

    @property
    def results(self) -> Path:
        return self.out_dir / "results.json"

    @property
    def benchmark_stats(self) -> Path:
        return self.out_dir / "benchmark.json"


@dataclass(frozen=True)
class ChaosArgs:
    """How the chaos suite runs: profile, picked scenarios, an extra contrast target, and the
    seed every repetition's traffic seed and fault-start jitter derive from."""

    profile: str
    scenarios: tuple[str, ...] = ()
    contrast: str | None = None
    seed: int | None = None

    def argv(self) -> list[str]:
        args = ["--chaos-profile", self.profile]
        args += [a for name in self.scenarios for a in ("--chaos-scenario", name)]
        args += ["--chaos-seed", str(self.seed)] if self.seed is not None else []
        return args + (["--chaos-contrast", self.contrast] if self.contrast else [])


@dataclass
class PytestSession:
    """The child pytest. `root`: the suite root (conftest.py, scenarios/, the pytest settings in
    its pyproject.toml). `cwd`: the project directory the run belongs to, where relative target
    paths start; in a clone both are the repository root and pytest runs there as ever. An
    installed copy runs in the project directory with its rootdir and settings pinned to the
    shipped suites, and with `-P`, so a `harness/` or `fixtures/` folder of the team's own
    repository never shadows ours."""

    root: Path
    suites: Sequence[Suite]
    artifacts: Artifacts
    pg_dsn: str
    hypothesis_profile: str
    pg_kind: str = "external"
    run_profile: str | None = None  # the run's profile (the signal suite sizes itself by it)
    target: str | None = None
    chaos: ChaosArgs | None = None
    gate_overrides: Sequence[str] = ()
    extra_args: Sequence[str] = ()
    cwd: Path | None = None  # None: the suite root (a clone)
    log_tail: deque[str] = field(default_factory=lambda: deque(maxlen=40))
    process: subprocess.Popen[bytes] | None = None
    _tail: _EventTail | None = field(default=None, init=False, repr=False)

    @property
    def in_place(self) -> bool:
        """Whether pytest runs in the suite root itself (a clone)."""
        return self.cwd is None or self.cwd.resolve() == self.root.resolve()

    def command(self) -> list[str]:
        a = self.artifacts
        paths = [p for suite in self.suites for p in suite.paths]
        gates = [arg for g in self.gate_overrides for arg in ("--gate", g)]
        target = ["--target", self.target] if self.target else []
        chaos = self.chaos.argv() if self.chaos else []  # set only when chaos is selected
        python, settings = [sys.executable], []
        if not self.in_place:
            python.append("-P")  # the project directory is not on sys.path
            paths = [str(self.root / p) for p in paths]
            settings = ["--rootdir", str(self.root), "-c", str(self.root / "pyproject.toml")]
            if self.cwd is not None:  # pytest-benchmark's storage: with the reports too
                settings += ["--benchmark-storage",
                             f"file://{self.cwd / 'reports' / '.benchmarks'}"]
        return [*python, "-m", "pytest", *paths, *settings,
                "-p", "harness.report.pytest_events", "--harness-events", str(a.events),
                "--junitxml", str(a.junit), "--results", str(a.results),
                "--benchmark-json", str(a.benchmark_stats),
                "-p", "no:cacheprovider", "--color=no", *gates, *target, *chaos,
                *self.extra_args]

    def environment(self) -> dict[str, str]:
        """The DSN (never on the command line), and which kind of server it is: the chaos
        suite's process faults need a server they may stop, so they start their own unless the
        run's server is external."""
        env = os.environ.copy()
        env.update(AUTHSTATE_DSN=self.pg_dsn, AUTHSTATE_PG="external",
                   AUTHSTATE_PG_KIND=self.pg_kind,
                   HYPOTHESIS_PROFILE=self.hypothesis_profile, PYTHONUNBUFFERED="1")
        if self.run_profile:
            env["AUTHSTATE_RUN_PROFILE"] = self.run_profile
        if not self.in_place:
            env.setdefault("PYTHONSAFEPATH", "1")  # -P for every Python process it starts too
        if not self.in_place and self.cwd is not None:
            # Hypothesis' example database goes with the reports, not loose in the project
            env.setdefault("HYPOTHESIS_STORAGE_DIRECTORY",
                           str(self.cwd / "reports" / ".hypothesis"))
        return env

    def start(self) -> None:
        self.artifacts.events.touch()
        self.process = subprocess.Popen(
            self.command(), cwd=self.cwd or self.root, env=self.environment(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self._pump = threading.Thread(target=self._copy_log, name="pytest-log", daemon=True)
        self._pump.start()

    def _copy_log(self) -> None:
        """Child output -> pytest.log, line by line, scrubbed of key material and passwords."""
        assert self.process is not None and self.process.stdout is not None
        with self.artifacts.pytest_log.open("w", encoding="utf-8") as log:
            for raw in self.process.stdout:
                line = scrub(raw.decode("utf-8", "replace").rstrip("\n"))
                log.write(line + "\n")
                log.flush()
                self.log_tail.append(line)

    def follow(self, on_events: Callable[[list[dict[str, Any]]], None],
               poll: float = 0.1) -> int:
        """Feed events to `on_events` until the child exits; return pytest's exit code.

        Callable again after a KeyboardInterrupt cut it short (the child is still tearing
        down): it goes on from where it stopped. Each event is delivered once; re-reading the
        file from the start would count every test twice."""
        assert self.process is not None
        if self._tail is None:
            self._tail = _EventTail(self.artifacts.events.open("rb"))
        tail = self._tail
        while self.process.poll() is None:
            batch = tail.read()
            if batch:
                on_events(batch)
            time.sleep(poll)
        self._pump.join(timeout=10)
        batch = tail.read(final=True)
        if batch:
            on_events(batch)
        return int(self.process.returncode)

    def interrupt(self, grace: float = 60.0) -> None:
        """After Ctrl-C: the child got SIGINT too; give it time to tear down, then insist."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.process.wait(timeout=grace)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class _EventTail:
    """Complete JSON lines appended since the last read (a partial last line waits)."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self._pending = b""

    def read(self, final: bool = False) -> list[dict[str, Any]]:
        if self._file.closed:
            return []
        self._pending += self._file.read()
        *lines, self._pending = self._pending.split(b"\n")
        if final:
            if self._pending:
                lines, self._pending = [*lines, self._pending], b""
            self._file.close()
        return list(_parse(lines))


def _parse(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.strip():
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a torn line after a hard kill: the log has the story
