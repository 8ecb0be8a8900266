"""pytest plugin the main job loads to follow a run: one JSON line per event, scrubbed.

`authstate-harness run` starts pytest in a child process (its own interpreter state, its output
in `pytest.log`) with `-p harness.report.pytest_events --harness-events FILE`, and tails FILE to
drive the progress display and build the report. Events:

    {"event": "collected", "tests": [nodeid, ...]}
    {"event": "result", "nodeid": ..., "when": "setup|call|teardown", "outcome": ...,
     "duration": s, "message": short scrubbed text or null}
    {"event": "fact", "key": ..., "value": ...}      (see `record_fact`)
    {"event": "harness_error", "nodeid": ..., "type": ..., "message": ...}
                                  (the harness failed, not the store: see is_harness_failure)
    {"event": "finished", "exitstatus": int}

Without `--harness-events` the plugin does nothing, so a plain `pytest` is unaffected.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any

import pytest

from harness.errors import is_harness_failure
from harness.report.redact import scrub, scrub_tree

PLUGIN_NAME = "authstate-harness-events"
# Lines of a failure's text kept in the report (the full text is in pytest.log): its head (the
# assertion, the error) and its tail (Hypothesis' falsifying example, a crashed Node.js module's
# last output lines), which matter most.
HEAD_LINES, TAIL_LINES = 5, 6
MESSAGE_LINES = HEAD_LINES + 1 + TAIL_LINES


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("authstate-harness").addoption(
        "--harness-events", default=None, metavar="FILE",
        help="append one JSON line per collection/result/fact event to FILE (used by `run`)")


class EventWriter:
    """Appends events to the file; flushes each line so the parent sees progress live."""

    def __init__(self, path: Path) -> None:
        self._file: IO[str] = path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def emit(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, **fields}, default=str)
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.emit("collected", tests=[item.nodeid for item in session.items])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call" and report.passed:
            return  # setup/teardown only matter when they fail or skip
        outcome = report.outcome
        if report.when != "call" and outcome == "failed":
            outcome = "error"
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        self.emit("result", nodeid=report.nodeid, when=report.when, outcome=outcome,
                  duration=round(report.duration, 6), message=_message(report))

    def pytest_exception_interact(self, node: pytest.Item | pytest.Collector,
                                  call: pytest.CallInfo[Any], report: Any) -> None:
        """A test that ended in a failure of the harness itself (a server could not be
        provided, a bad spec) makes the run a harness error: tell the main job, once per test.
        What the target did -- its errors, refusals, timeouts, a crashed Node.js process -- is
        an ordinary failure, a finding about the store (harness.errors.is_harness_failure)."""
        excinfo = call.excinfo
        if excinfo is None or not is_harness_failure(excinfo.value):
            return
        exc = _harness_error(excinfo.value)
        text = str(getattr(exc, "message", exc))
        hint = getattr(exc, "hint", None)
        self.emit("harness_error", nodeid=getattr(node, "nodeid", ""),
                  type=type(exc).__name__, message=scrub(text + (f" ({hint})" if hint else "")))

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.emit("finished", exitstatus=int(exitstatus))

    def close(self) -> None:
        self._file.close()


def _harness_error(exc: BaseException) -> BaseException:
    """The HarnessError to name: `exc`, or the first harness failure in its group."""
    if isinstance(exc, BaseExceptionGroup):
        return next(_harness_error(e) for e in exc.exceptions if is_harness_failure(e))
    return exc


def _message(report: pytest.TestReport) -> str | None:
    if report.passed:
        return None
    if report.skipped and isinstance(report.longrepr, tuple):
        return scrub(str(report.longrepr[2]).removeprefix("Skipped: "))
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else report.longreprtext
    lines = str(text).strip().splitlines()
    if len(lines) > MESSAGE_LINES:
        cut = len(lines) - HEAD_LINES - TAIL_LINES
        lines = [*lines[:HEAD_LINES], f"... ({cut} more lines in pytest.log)",
                 *lines[-TAIL_LINES:]]
    return scrub("\n".join(lines))


def pytest_configure(config: pytest.Config) -> None:
    path = config.getoption("--harness-events", default=None)
    if path:
        config.pluginmanager.register(EventWriter(Path(path)), PLUGIN_NAME)


def pytest_unconfigure(config: pytest.Config) -> None:
    writer = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(writer, EventWriter):
        writer.close()


def record_fact(config: pytest.Config, key: str, value: Any) -> None:
    """Tell the main job a fact only the test session knows (e.g. which fault proxy it used)."""
    writer = config.pluginmanager.get_plugin(PLUGIN_NAME)
    if isinstance(writer, EventWriter):
        writer.emit("fact", key=key, value=scrub_tree(value))
