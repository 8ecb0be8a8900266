"""A server process we started: its log file, a reaper in case we die, an orderly stop."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.infra.reaper import CleanupPlan, Reaper
from harness.paths import import_root


class ServerProcess:
    """Popen with stderr to a private log, reaper-protected; `stop()` is idempotent."""

    def __init__(self, argv: Sequence[str], *, stdout: int | None = subprocess.DEVNULL,
                 env: dict[str, str] | None = None, name: str = "toxiproxy") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=f"authstate-{name}-"))
        self.log_path = self.dir / "server.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=stdout, stderr=self._log, env=env,
            start_new_session=True,  # a terminal's Ctrl-C reaches us; we stop it in order
            close_fds=True)
        self._reaper = Reaper.spawn(CleanupPlan(kill_pids=[self.proc.pid],
                                                remove_paths=[str(self.dir)]))
        self._stopped = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        code = self.proc.poll()
        status = f"; exit code {code}" if code is not None else ""
        tail = self.log_tail()
        return f"{status}\n--- server log ---\n{tail}" if tail else status

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the server closes every proxy), SIGKILL if it lingers, then clean up."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            for stream in (self.proc.stdout, self.proc.stdin):
                if stream is not None:
                    stream.close()
        finally:
            self._log.close()
            shutil.rmtree(self.dir, ignore_errors=True)
            self._reaper.release()


def child_env() -> dict[str, str]:
    """Our environment, with the directory holding `harness` on PYTHONPATH (for `-P -m`)."""
    root = str(import_root())
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env
