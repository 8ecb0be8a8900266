"""`FaultyDisk`: the harness's handle on a mounted fault-injecting filesystem.

    disk = FaultyDisk.start(mountpoint, backing)     # raises DiskUnavailable where FUSE can't
    disk.write_something...; disk.power_loss()        # or enospc(), eio(), fsync_delay(), ...
    disk.stop()                                      # unmount, stop the process

The filesystem runs in its own process (`python -m harness.faults.disk serve`), never in the
process that uses the mount (a process blocked on its own FUSE request would deadlock). It is
health-checked before `start` returns (the control socket answers and the mount is listed in
/proc/self/mounts), and a watchdog (harness/infra/reaper.py) lazily unmounts it and kills the
process if the harness dies without `stop`, so no dead mount ("Transport endpoint is not
connected") outlives a run. The filesystem also detaches itself when its standard input (held
by the harness) closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.faults.disk.control import DiskControl, DiskControlError
from harness.infra.reaper import CleanupPlan, Reaper
from harness.paths import repo_root

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
ENABLE_HINT = ("as root on Debian/Ubuntu: apt-get install fuse3 (libfuse3 and fusermount3); "
               "in a container also pass --device /dev/fuse --cap-add SYS_ADMIN")


class DiskUnavailable(HarnessError):
    """FUSE cannot be mounted here; the message says why, the hint how to enable it."""


@dataclass(frozen=True)
class Unavailable:
    reason: str
    hint: str = ENABLE_HINT


def unavailable() -> Unavailable | None:
    """Why a FUSE filesystem cannot be mounted here (None: it can be tried)."""
    if not Path("/dev/fuse").exists():
        return Unavailable("no /dev/fuse: the kernel's FUSE device is missing",
                           "load the module (modprobe fuse) or, in a container, pass "
                           "--device /dev/fuse --cap-add SYS_ADMIN")
    if ctypes.util.find_library("fuse3") is None:
        return Unavailable("libfuse3 is not installed (the disk faults mount a FUSE filesystem)")
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        return Unavailable("fusermount3 is not installed (needed to mount FUSE as a normal user)")
    with contextlib.suppress(ImportError):
        import importlib.util

        if importlib.util.find_spec("mfusepy") is not None:
            return None
    return Unavailable("the Python package mfusepy is not installed",
                       "pip install mfusepy (a dependency of the harness: reinstall it)")


def _mounted(mountpoint: Path) -> bool:
    target = str(mountpoint)
    with contextlib.suppress(OSError), open("/proc/self/mounts") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 2 and fields[1] == target and fields[2].startswith("fuse"):
                return True
    return False


def _unmount_argv(mountpoint: Path, lazy: bool) -> list[str] | None:
    fusermount = shutil.which("fusermount3")
    if fusermount is not None:
        return [fusermount, "-u", *(["-z"] if lazy else []), str(mountpoint)]
    umount = shutil.which("umount")
    if umount is not None and os.geteuid() == 0:
        return [umount, *(["-l"] if lazy else []), str(mountpoint)]
    return None


class FaultyDisk:
    """A running, mounted `LazyDisk` process and its control client."""

    def __init__(self, mountpoint: Path, backing: Path, proc: subprocess.Popen[bytes],
                 control: DiskControl, socket_dir: Path, log_path: Path,
                 reaper: Reaper | None) -> None:
        self.mountpoint = mountpoint
        self.backing = backing
        self.proc = proc
        self.control = control
        self.log_path = log_path
        self._socket_dir = socket_dir
        self._reaper = reaper
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def start(cls, mountpoint: Path, backing: Path, *, log_path: Path | None = None,
              timeout_s: float = START_TIMEOUT_S) -> FaultyDisk:
        """Mount a fresh filesystem over `backing` at `mountpoint` (an existing, empty
        directory). Raises DiskUnavailable when FUSE cannot be mounted here."""
        missing = unavailable()
        if missing is not None:
            raise DiskUnavailable(missing.reason, hint=missing.hint)
        mountpoint, backing = Path(mountpoint).resolve(), Path(backing).resolve()
        backing.mkdir(parents=True, exist_ok=True)
        socket_dir = Path(tempfile.mkdtemp(prefix="authstate-disk-"))  # short: sun_path limit
        control_path = socket_dir / "control.sock"
        log_path = log_path or socket_dir / "disk.log"
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.faults.disk", "serve", "--mount",
                 str(mountpoint), "--backing", str(backing), "--control", str(control_path),
                 "--watch-stdin"],
                stdin=subprocess.PIPE, stdout=log_fd, stderr=log_fd, cwd=repo_root(),
                start_new_session=True, env={**os.environ, "FUSE_LIBRARY_NAME": "fuse3"})
        finally:
            os.close(log_fd)
        lazy = _unmount_argv(mountpoint, lazy=True)
        reaper = Reaper.spawn(CleanupPlan(
            commands=[{"argv": lazy, "uid": None}] if lazy else [], kill_pids=[proc.pid],
            remove_paths=[str(socket_dir)]))
        disk = cls(mountpoint, backing, proc, DiskControl(control_path), socket_dir, log_path,
                   reaper)
        try:
            disk._wait_ready(timeout_s)
        except BaseException:
            disk.stop()
            raise
        return disk

    def _wait_ready(self, timeout_s: float) -> None:
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            if self.proc.poll() is not None:
                raise DiskUnavailable(
                    f"the disk fault filesystem exited (code {self.proc.returncode}) before "
                    f"mounting {self.mountpoint}: {self.log_tail()}", hint=ENABLE_HINT)
            if _mounted(self.mountpoint):
                with contextlib.suppress(DiskControlError):
                    self.control.call("ping")
                    return
            time.sleep(0.02)
        raise DiskUnavailable(f"the disk fault filesystem did not mount {self.mountpoint} "
                              f"within {timeout_s:g} s: {self.log_tail()}", hint=ENABLE_HINT)

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:].strip() or "(no output)"
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Unmount (lazily if still busy), stop the process, drop the watchdog. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:  # held fsyncs would keep the process from exiting
            with contextlib.suppress(DiskControlError):
                DiskControl(self.control.path, timeout_s=5).call("clear-faults")
        if _mounted(self.mountpoint):
            for lazy in (False, True):
                argv = _unmount_argv(self.mountpoint, lazy)
                if argv is None:
                    break
                subprocess.run(argv, check=False, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=30)
                if not _mounted(self.mountpoint):
                    break
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self._socket_dir, ignore_errors=True)
        if self._reaper is not None:
            self._reaper.release()

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> FaultyDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults ----------------------------------------------------------------------------------
    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        return self.control.call(cmd, **args)

    async def acall(self, cmd: str, **args: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self.control.call, cmd, **args)

    def status(self) -> dict[str, Any]:
        return self.call("status")

    def power_loss(self, mode: str = "clear", **args: Any) -> dict[str, Any]:
        """Forget every unsynced byte and namespace change (mode torn-op / torn-seq: persist
        part of the last write); the report says what was dropped."""
        return self.call("power-loss", mode=mode, **args)

    def enospc(self, after_bytes: int = 0, refusals: int | None = None,
               delay_s: float = 0.0) -> dict[str, Any]:
        """ENOSPC once `after_bytes` more bytes are written (the write that crosses is short);
        with `refusals`, space returns by itself after that many ENOSPC errors, each of which
        takes `delay_s`."""
        return self.call("enospc", after_bytes=after_bytes, refusals=refusals, delay_s=delay_s)

    def eio(self, on: str, count: int | str = "every") -> dict[str, Any]:
        return self.call("eio", on=on, count=count)

    def fsync_delay(self, seconds: float) -> dict[str, Any]:
        return self.call("fsync-delay", seconds=seconds)

    def hold_fsync(self) -> dict[str, Any]:
        return self.call("hold-fsync")

    def release_fsync(self) -> dict[str, Any]:
        return self.call("release-fsync")

    def clear_faults(self) -> dict[str, Any]:
        return self.call("clear-faults")

    def wait_idle(self, idle_s: float = 0.05, timeout_s: float = 5.0) -> bool:
        return bool(self.call("wait-idle", idle_s=idle_s, timeout_s=timeout_s)["idle"])
