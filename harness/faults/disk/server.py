"""The filesystem's own process: mount, serve FUSE and the control socket, unmount on exit.

    python -m harness.faults.disk serve --mount DIR --backing DIR --control SOCKET

Runs in the foreground until unmounted (`fusermount3 -u DIR`), SIGTERM / SIGINT (libfuse
unmounts on its way out) or, with `--watch-stdin` (how the harness starts it), the end of its
standard input: the harness closed it or died, and the mount is detached so that nothing is left
mounted on a dead filesystem.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from harness.faults.disk.control import ControlServer
from harness.faults.disk.model import LazyDisk

log = logging.getLogger("harness.faults.disk")
MNT_DETACH = 2
FSNAME = "authstate-disk"


def detach(mount: Path) -> None:
    """Lazy unmount: the mount goes away now, open files keep working until closed."""
    fusermount = shutil.which("fusermount3")
    if fusermount is not None:
        subprocess.run([fusermount, "-u", "-z", str(mount)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        return
    if os.geteuid() == 0:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.umount2(str(mount).encode(), MNT_DETACH)


def _watch_stdin(mount: Path) -> None:
    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        log.warning("disk: the harness went away; detaching %s", mount)
        detach(mount)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve(mount: Path, backing: Path, control: Path, *, watch_stdin: bool = False,
          debug: bool = False) -> int:
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")  # never libfuse 2 when both exist
    disk = LazyDisk(backing)
    server = ControlServer(control, disk)
    server.start()
    if watch_stdin:
        _watch_stdin(mount)
    try:
        import mfusepy

        from harness.faults.disk.fusefs import LazyOperations

        options: dict[str, object] = {"foreground": True, "fsname": FSNAME,
                                      "default_permissions": True, "debug": debug}
        if os.geteuid() == 0:
            options["allow_other"] = True  # a target running as another user (Node sidecar)
        mfusepy.FUSE(LazyOperations(disk), str(mount), **options)
    finally:
        server.stop()
    return 0
