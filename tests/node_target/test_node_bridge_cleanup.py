"""No Node.js process outlives the harness: not after close(), not when the target is never
closed (interpreter exit), not when the harness process is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
from node_bridge_support import FAKE_DSN, PROBE, sidecars

REPO = Path(__file__).resolve().parents[2]

OPEN_AND_WAIT = f"""
import asyncio, sys, time
from pathlib import Path
from harness.node_target.spec import open_node_target

async def main():
    target = await open_node_target({FAKE_DSN!r}, cache_dir=Path(sys.argv[1]),
                                    module=Path({str(PROBE)!r}), export="default",
                                    deps_dir=None, label="probe", migrate_schema=False)
    await (await target.load("acme")).keys.set({{"session": {{"a.0": {{"x": 1}}}}}})
    print(target.sidecar.proc.pid, flush=True)
    if sys.argv[2] == "exit":
        return  # never closed: the finalizer must stop it at interpreter exit
    time.sleep(600)

asyncio.run(main())
"""


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def _start(tmp_path: Path, mode: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-c", OPEN_AND_WAIT, str(tmp_path), mode],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip().isdigit(), f"the child did not open the target (exit {proc.poll()})"
    return proc, int(line)


def test_sidecar_dies_with_a_sigkilled_harness(node: str, tmp_path: Path) -> None:
    proc, sidecar_pid = _start(tmp_path, "wait")
    try:
        assert psutil.pid_exists(sidecar_pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert _gone_within(sidecar_pid, 15), "the sidecar outlived its SIGKILLed parent"
    finally:
        if proc.poll() is None:
            proc.kill()
        if psutil.pid_exists(sidecar_pid):
            with_process = psutil.Process(sidecar_pid)
            if with_process.status() != psutil.STATUS_ZOMBIE:
                with_process.kill()


def test_an_unclosed_target_is_stopped_at_interpreter_exit(node: str, tmp_path: Path) -> None:
    proc, sidecar_pid = _start(tmp_path, "exit")
    assert proc.wait(30) == 0
    assert _gone_within(sidecar_pid, 15), "the sidecar outlived the interpreter"


async def test_close_leaves_no_process(open_probe, node: str) -> None:  # type: ignore[no-untyped-def]
    target = await open_probe()
    pid = target.sidecar.proc.pid
    assert [p.pid for p in sidecars(os.getpid())] == [pid]
    await target.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert sidecars(os.getpid()) == []
