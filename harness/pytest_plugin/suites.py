"""`pytest --authstate-suite chaos [--authstate-scenario sever]`: the harness's own suites as
tests of the project's pytest run, one item per suite (marked `authstate_suite`, so `-m
authstate_suite` picks only them).

Each item is one `authstate-harness run --suite NAME` in a child process, exactly the main job
(its own PostgreSQL, gates from the project's pyproject.toml, a report folder under
`reports/`): the suites need their own pytest settings and fixtures, which a child keeps out
of the project's session. The item passes when the run exits 0; otherwise its failure shows
the run's summary and where the report is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from harness.pytest_plugin.settings import PluginSettings

MARKER = "authstate_suite"
TIMEOUT_S = 3600.0  # a run bounds its own phases; this only stops a wedged child


class SuiteRunFailed(Exception):
    """The run's exit code and the end of its output."""

    def __init__(self, code: int, output: str) -> None:
        super().__init__(code, output)
        self.code, self.output = code, output


class SuiteRun(pytest.Item):
    def __init__(self, *, suite: str, settings: PluginSettings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.suite, self.settings = suite, settings
        self.add_marker(MARKER)

    def command(self) -> list[str]:
        argv = [sys.executable, "-P", "-m", "harness", "run", "--suite", self.suite, "--plain"]
        if self.settings.target:
            argv += ["--target", self.settings.target]
        if self.suite == "chaos":
            argv += [a for name in self.settings.scenarios for a in ("--scenario", name)]
        return argv

    def runtest(self) -> None:
        from harness.paths import import_root

        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")  # as `run` names its folders
        out = self.settings.reports / f"{stamp}-{self.suite}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(import_root()), os.environ.get("PYTHONPATH")) if p)}
        if self.settings.dsn:
            env["AUTHSTATE_DSN"] = self.settings.dsn  # never on a command line
        done = subprocess.run([*self.command(), "--out", str(out)], cwd=self.config.rootpath,
                              env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
        if done.returncode != 0:
            raise SuiteRunFailed(done.returncode, (done.stdout + done.stderr).strip())

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, SuiteRunFailed):
            tail = "\n".join(excinfo.value.output.splitlines()[-40:])
            return (f"`authstate-harness run --suite {self.suite}` exited "
                    f"{excinfo.value.code} (1: a check failed, 2: harness error)\n{tail}")
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"authstate-harness run --suite {self.suite}"


def suite_items(session: pytest.Session, settings: PluginSettings) -> list[pytest.Item]:
    from harness.errors import ConfigError
    from harness.runner.suites import select_suites

    try:
        suites = select_suites(settings.suites)
    except ConfigError as exc:
        raise pytest.UsageError(f"--authstate-suite: {exc.message} ({exc.hint})") from None
    return [SuiteRun.from_parent(session, name=f"authstate-harness[{suite.name}]",
                                 nodeid=f"authstate-harness[{suite.name}]", suite=suite.name,
                                 settings=settings)
            for suite in suites]
