"""`pg up|down|status`: a server that died leaves nothing behind, foreground servers are seen,
status lists every server. Real embedded PostgreSQL, state in a private runtime directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def runtime(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "XDG_RUNTIME_DIR": str(tmp_path), "COLUMNS": "300"}
    env.pop("AUTHSTATE_DSN", None)
    return env


def _pg(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "pg", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _state(env: dict[str, str], name: str) -> dict[str, object]:
    base = Path(env["XDG_RUNTIME_DIR"]) / f"authstate-harness-{os.getuid()}"
    return json.loads((base / f"pg-{name}.json").read_text())


def test_up_over_a_dead_server_removes_its_files(runtime) -> None:
    assert _pg(runtime, "up", "--name", "t1").returncode == 0
    try:
        old = Path(str(_state(runtime, "t1")["base_dir"]))
        pid = int((old / "data" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while "dead" not in _pg(runtime, "status", "--name", "t1").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        again = _pg(runtime, "up", "--name", "t1")
        assert again.returncode == 0, again.stderr
        assert not old.exists() and "removed the files of the dead server" in again.stdout
    finally:
        _pg(runtime, "down", "--name", "t1")


def test_status_lists_servers_including_a_foreground_one(runtime) -> None:
    assert _pg(runtime, "up", "--name", "bg").returncode == 0
    fg = subprocess.Popen([sys.executable, "-m", "harness", "pg", "up", "--name", "fg",
                           "--foreground"], cwd=ROOT, env=runtime, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        listing = ""
        while "fg: running (foreground)" not in listing:
            assert time.monotonic() < deadline and fg.poll() is None, listing
            time.sleep(0.3)
            listing = _pg(runtime, "status").stdout
        assert "bg: running" in listing
        refused = _pg(runtime, "down", "--name", "fg")
        assert refused.returncode == 2 and "foreground" in refused.stderr
    finally:
        os.killpg(fg.pid, signal.SIGINT)
        fg.wait(timeout=60)
        _pg(runtime, "down", "--name", "bg")
    assert "fg" not in _pg(runtime, "status").stdout  # its state left with it
