"""`authstate-harness test [PYTEST ARGS...]`: run the harness's own suites with pytest.

A separate pytest process in the repository root, so the root `conftest.py`, `pyproject.toml`'s
pytest settings and the fixtures in `fixtures/` apply exactly as with a plain `pytest`; its exit
code is returned unchanged (0 passed, 1 tests failed, 2 interrupted, 3-5 pytest/usage errors).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from harness.errors import ConfigError
from harness.paths import checkout_root


def pytest_command(pytest_args: list[str]) -> list[str]:
    """pytest under this interpreter, so the `.venv` the bootstrap made is the one used."""
    args = list(pytest_args)
    if args[:1] == ["--"]:  # `test -- ARGS` also works
        args = args[1:]
    return [sys.executable, "-m", "pytest", *args]


def _run(args: argparse.Namespace) -> int:
    root = checkout_root()
    if root is None or not (root / "tests").is_dir():
        raise ConfigError(
            "`test` runs the harness's own unit tests (tests/), which only a clone has",
            hint="run `python3 -m harness test` from a clone of the authstate-harness "
                 "repository; an installed copy runs the suites with `authstate-harness run`",
        )
    process = subprocess.Popen(pytest_command(args.pytest_args), cwd=root, env=os.environ.copy())
    try:
        return process.wait()
    except KeyboardInterrupt:
        # pytest got the same SIGINT (same process group): let it stop its servers and report.
        try:
            return process.wait(timeout=60)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            process.send_signal(signal.SIGTERM)
            process.wait()
            raise KeyboardInterrupt from None


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "test",
        help="run the test suites (tests/ and scenarios/) with pytest",
        description="Run the harness's test suites with pytest in the repository root. Every "
                    "argument after `test` goes to pytest unchanged, e.g. `authstate-harness "
                    "test -k stateful -x` or `authstate-harness test scenarios/chaos "
                    "--chaos-profile quick`; pytest's own help is `authstate-harness test -- "
                    "--help`. The exit code is pytest's (0 passed, 1 tests failed, 2 "
                    "interrupted, 3-5 pytest/usage errors).",
    )
    # Filled by the CLI with everything after `test`, verbatim (see cli.PASSTHROUGH_COMMANDS).
    parser.add_argument("pytest_args", nargs="*", metavar="PYTEST_ARGS",
                        help="arguments passed to pytest unchanged")
    parser.set_defaults(func=_run)
