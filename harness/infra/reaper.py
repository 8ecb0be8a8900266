"""A watchdog process that cleans up after us even if we are killed with SIGKILL.

`Reaper.spawn(plan)` starts `python -m harness.infra.reaper` in its own session (so a terminal's
Ctrl-C does not reach it) with a pipe on its stdin. The parent keeps the write end; when the parent
exits for any reason the pipe reaches EOF and the reaper carries out the plan: stop servers with
their own tools, kill leftover process ids, remove directories. Every step is idempotent, so the
parent's own orderly shutdown and the reaper never conflict.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field


@dataclass
class CleanupPlan:
    """What to undo: commands to run (as given user id), pids to kill, paths to remove."""

    # each command: {"argv": [...], "uid": int | None}
    commands: list[dict[str, object]] = field(default_factory=list)
    kill_pids: list[int] = field(default_factory=list)
    remove_paths: list[str] = field(default_factory=list)


class Reaper:
    """Handle on a running watchdog; `release()` when the parent has cleaned up itself."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc

    @classmethod
    def spawn(cls, plan: CleanupPlan) -> Reaper:
        proc = subprocess.Popen(
            [sys.executable, "-m", "harness.infra.reaper", json.dumps(asdict(plan))],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        return cls(proc)

    def release(self, timeout: float = 15.0) -> None:
        """Close the pipe (the reaper re-checks the plan, finds nothing to do) and wait for it."""
        if self._proc.stdin and not self._proc.stdin.closed:
            with contextlib.suppress(OSError):
                self._proc.stdin.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


def pid_alive(pid: object) -> bool:
    """Whether a process with this pid exists (one we may not signal counts as alive)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _demote(uid: int | None):  # type: ignore[no-untyped-def]
    if uid is None:
        return None

    def _drop() -> None:
        import pwd

        gid = pwd.getpwuid(uid).pw_gid
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return _drop


def carry_out(plan: CleanupPlan) -> None:
    for cmd in plan.commands:
        argv = [str(a) for a in cmd["argv"]]  # type: ignore[union-attr]
        if not os.path.exists(argv[0]):
            continue
        with contextlib.suppress(Exception):
            subprocess.run(argv, preexec_fn=_demote(cmd.get("uid")),  # type: ignore[arg-type]
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30,
                           check=False)
    for pid in plan.kill_pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    for path in plan.remove_paths:
        shutil.rmtree(path, ignore_errors=True)


def _main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    plan = CleanupPlan(**json.loads(argv[0]))
    with contextlib.suppress(Exception):
        sys.stdin.buffer.read()  # blocks until the parent closes the pipe or dies
    carry_out(plan)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
