"""The Locust subprocess is owned: stopping it ends its whole process group (forked workers too),
and the command line / environment carry what the Locust processes need."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from harness.load.faults import parse_fault
from harness.load.runner import LoadEnv, LoadPlan, LocustProcess, locust_command, locust_env

# A stand-in for `locust --processes 2`: a parent that forks two children and ignores SIGTERM
# (the worst case: only SIGKILL ends it); it writes the pids it made.
FORKING = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pids = [os.getpid()]
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        while True:
            time.sleep(1)
    pids.append(pid)
open(sys.argv[1], "w").write(" ".join(map(str, pids)))
while True:
    time.sleep(1)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of ours counts as gone
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_stop_kills_the_whole_group_even_when_sigterm_is_ignored(tmp_path: Path,
                                                                  monkeypatch) -> None:
    import harness.load.runner as runner

    monkeypatch.setattr(runner, "STOP_GRACE_S", 0.5)
    pids_file = tmp_path / "pids"
    process = LocustProcess([sys.executable, "-c", FORKING, str(pids_file)], dict(os.environ),
                            tmp_path / "log")
    with process:
        for _ in range(200):
            if pids_file.exists() and len(pids_file.read_text().split()) == 3:
                break
            time.sleep(0.05)
        pids = [int(p) for p in pids_file.read_text().split()]
        assert all(_alive(p) for p in pids)
    for _ in range(100):
        if not any(_alive(p) for p in pids):
            break
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids), "a process of the group outlived stop()"


def test_command_and_environment_carry_the_plan(tmp_path: Path) -> None:
    plan = LoadPlan(profile="group-heavy", companies=250, duration_s=45, rate=800.0,
                    processes=2, target="resilient", fault=parse_fault("sever@10s+5s", 45))
    cmd = locust_command(plan, tmp_path)
    # -P: the project directory Locust runs in never shadows `harness` on sys.path
    assert cmd[1:4] == ["-P", "-m", "locust"] and "--headless" in cmd
    assert cmd[cmd.index("-u") + 1] == "250" and cmd[cmd.index("-t") + 1] == "45s"
    assert cmd[cmd.index("--processes") + 1] == "2"
    assert cmd[cmd.index("--html") + 1] == str(tmp_path / "locust.html")
    env = locust_env(plan, LoadEnv(dsn="postgresql://app@127.0.0.1:1/db",
                                   admin_dsn="postgresql://postgres@127.0.0.1:2/db"),
                     tmp_path, "tag1", tmp_path / "cache")
    assert env["AUTHSTATE_DSN"] == "postgresql://app@127.0.0.1:1/db"  # the proxy's, not admin
    assert env["AUTHSTATE_PROFILE"] == "group-heavy" and env["AUTHSTATE_TARGET"] == "resilient"
    assert env["AUTHSTATE_RATE"] == "800" and env["AUTHSTATE_COMPANIES"] == "250"
    assert env["AUTHSTATE_FAULT_WINDOW"] == "10,15"
    assert env["AUTHSTATE_HISTORY_DIR"] == str(tmp_path / "history")
    assert env["AUTHSTATE_CACHE_DIR"] == str(tmp_path / "cache")
