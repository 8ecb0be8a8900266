"""`authstate-harness test`: pytest arguments pass through untouched; pytest's exit code wins."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _test(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)


def test_options_after_test_reach_pytest() -> None:
    done = _test("test", "--co", "-q", "-k", "test_redact", "tests/report")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tests/report/test_redact.py::" in done.stdout
    assert "test_config.py" not in done.stdout  # -k was applied by pytest, not eaten by us


def test_global_options_before_test_and_double_dash_work() -> None:
    done = _test("-v", "test", "--", "--co", "-q", "tests/report/test_markdown.py::"
                 "test_harness_error_is_shown_first")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 test collected" in done.stdout  # the node id after `--` reached pytest


def test_pytest_exit_code_is_returned() -> None:
    assert _test("test", "-q", "tests/does-not-exist").returncode == 4  # pytest: usage error
