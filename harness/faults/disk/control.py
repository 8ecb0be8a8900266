"""The control channel of the fault-injecting filesystem: JSON lines over a Unix socket.

One request per line, one reply per line:

    {"cmd": "power-loss", "mode": "torn-op", "keep_bytes": 100}
    {"ok": true, "result": {"bytes_dropped": 4123, "files": {...}, ...}}
    {"ok": false, "error": "unknown command 'x'"}

Why a socket and not LazyFS's FIFO: a command must be answered (a power loss returns what it
dropped, `status` the counters, and the harness must know the fault is in force before it goes
on), which a FIFO can only do with a second FIFO and a framing of its own; and why not HTTP on a
port: a Unix socket needs no free port, is reachable by no one but this machine's users allowed
by its file mode (0600), and needs no web framework inside the filesystem's process.

Commands (arguments optional unless named):
    ping                               {"pid", "epoch"}
    status                             unsynced bytes by file, faults, counters
    power-loss  mode=clear|torn-op|torn-seq keep_bytes fraction seed unit
    crash | torn-op | torn-seq         power-loss with that mode
    enospc      after_bytes=0 refusals delay_s
                                       ENOSPC once `after_bytes` more bytes were written; space
                                       returns by itself after `refusals` errors; each refusal
                                       takes `delay_s`
    eio         on=write|fsync count=N|"every"
    fsync-delay seconds
    hold-fsync | release-fsync         fsyncs wait until released
    clear-faults                       no ENOSPC, EIO or delay; held fsyncs released
    wait-idle   idle_s timeout_s       {"idle": bool}: no call in flight for idle_s
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.faults.disk.faultstate import EVERY
from harness.faults.disk.model import LazyDisk

CALL_TIMEOUT_S = 30.0


class DiskControlError(HarnessError):
    """The filesystem refused a command or could not be reached."""


def _count(value: Any) -> int:
    if value in (None, "every", "all"):
        return EVERY
    count = int(value)
    if count < 0:
        raise ValueError("count must be >= 0 or 'every'")
    return count


def _eio(disk: LazyDisk, on: str = "write", count: Any = "every") -> dict[str, Any]:
    if on not in ("write", "fsync"):
        raise ValueError("eio on= must be 'write' or 'fsync'")
    return disk.set_faults(**{"eio_writes" if on == "write" else "eio_fsyncs": _count(count)})


def _power_loss(mode: str) -> Callable[..., dict[str, Any]]:
    return lambda disk, **kw: disk.power_loss(mode, **kw)


def _hold(disk: LazyDisk) -> dict[str, Any]:
    disk.gate.hold()
    return {"fsync_hold": True}


def _release(disk: LazyDisk) -> dict[str, Any]:
    disk.gate.release()
    return {"fsync_hold": False}


COMMANDS: dict[str, Callable[..., dict[str, Any]]] = {
    "ping": lambda disk: {"pid": os.getpid(), "epoch": disk.epoch},
    "status": lambda disk: disk.status(),
    "power-loss": lambda disk, mode="clear", **kw: disk.power_loss(mode, **kw),
    "crash": _power_loss("clear"),
    "torn-op": _power_loss("torn-op"),
    "torn-seq": _power_loss("torn-seq"),
    "enospc": lambda disk, after_bytes=0, refusals=None, delay_s=0.0: disk.set_faults(
        enospc_budget=int(after_bytes), enospc_delay_s=float(delay_s),
        enospc_refusals=None if refusals is None else max(1, int(refusals))),
    "eio": _eio,
    "fsync-delay": lambda disk, seconds=1.0: disk.set_faults(fsync_delay_s=float(seconds)),
    "hold-fsync": _hold,
    "release-fsync": _release,
    "clear-faults": lambda disk: disk.clear_faults(),
    "wait-idle": lambda disk, idle_s=0.05, timeout_s=5.0: {
        "idle": disk.wait_idle(float(idle_s), float(timeout_s))},
}


def execute(disk: LazyDisk, request: dict[str, Any]) -> dict[str, Any]:
    """One command's reply (never raises: errors are replies)."""
    args = dict(request)
    name = args.pop("cmd", None)
    command = COMMANDS.get(str(name))
    if command is None:
        return {"ok": False, "error": f"unknown command {name!r} (one of {', '.join(COMMANDS)})"}
    try:
        return {"ok": True, "result": command(disk, **args)}
    except (TypeError, ValueError) as exc:
        return {"ok": False, "error": f"{name}: {exc}"}


class ControlServer:
    """Serves `execute` on a Unix socket, one thread per connection."""

    def __init__(self, path: Path, disk: LazyDisk) -> None:
        self.path = path

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    try:
                        request = json.loads(line)
                        reply = (execute(disk, request) if isinstance(request, dict)
                                 else {"ok": False, "error": "a request is a JSON object"})
                    except ValueError as exc:
                        reply = {"ok": False, "error": f"not JSON: {exc}"}
                    self.wfile.write(json.dumps(reply, default=str).encode() + b"\n")
                    self.wfile.flush()

        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        old = os.umask(0o077)
        try:
            self._server = socketserver.ThreadingUnixStreamServer(str(path), Handler)
        finally:
            os.umask(old)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="disk-control")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


class DiskControl:
    """Client of the control socket (blocking; call from a thread in async code)."""

    def __init__(self, path: Path, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.path = path
        self.timeout_s = timeout_s

    def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        payload = json.dumps({"cmd": cmd, **{k: v for k, v in args.items() if v is not None}})
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(str(self.path))
                sock.sendall(payload.encode() + b"\n")
                data = b""
                while not data.endswith(b"\n"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError as exc:
            raise DiskControlError(
                f"the disk fault filesystem's control socket {self.path} did not answer "
                f"{cmd!r}: {exc}", hint="the filesystem process may have died; see its log"
            ) from None
        try:
            reply = json.loads(data)
        except ValueError:
            raise DiskControlError(f"control socket {self.path}: no reply to {cmd!r}",
                                   hint="the filesystem process may have died; see its log"
                                   ) from None
        if not reply.get("ok"):
            raise DiskControlError(f"disk fault command {cmd!r} refused: {reply.get('error')}",
                                   hint="see harness/faults/disk/control.py for the commands")
        result: dict[str, Any] = reply["result"]
        return result
