"""Unpatched threads, locks, queues and processes, for code that may run under gevent.

The load suite runs targets inside Locust processes, where `gevent.monkey.patch_all()` has
turned `threading.Thread` into a greenlet, `threading.Lock` into a gevent lock and
`subprocess.Popen` into a class that needs the main thread's event loop. The sidecar's I/O
threads must be real OS threads and its primitives real OS locks, whichever thread (the asyncio
loop's, a greenlet's hub) calls them: these are the originals, or the stdlib's own when gevent
never patched anything.
"""

from __future__ import annotations

import _queue
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any


def original(module: str, name: str) -> Any:
    """`module.name` as it was before gevent's monkey-patching (as is, if not patched)."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched(module):
        return monkey.get_original(module, name)
    return getattr(importlib.import_module(module), name)


SimpleQueue = _queue.SimpleQueue  # C implementation: real OS locks, put() is reentrant


def allocate_lock() -> Any:
    return original("_thread", "allocate_lock")()


def sleep(seconds: float) -> None:
    original("time", "sleep")(seconds)


class NativeProcess:
    """A child started with `os.posix_spawn` in a session of its own (its process group id is
    its pid): stdin, stdout+stderr merged, and one more pipe at fd 3 (the sidecar's replies).

    Not subprocess.Popen: under gevent its patched class needs the main thread's loop and the
    original one cannot fork any more. Popen's `pid`, `stdin`, `stdout` and `poll()` suffice.
    """

    REPLY_FD = 3

    def __init__(self, argv: list[str], *, env: dict[str, str], reply_pipe: bool = True) -> None:
        stdin_r, stdin_w = os.pipe()
        out_r, out_w = os.pipe()
        reply_r, reply_w = os.pipe() if reply_pipe else (-1, -1)
        actions = [(os.POSIX_SPAWN_DUP2, stdin_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1),
                   (os.POSIX_SPAWN_DUP2, out_w, 2)]
        if reply_pipe:
            actions.append((os.POSIX_SPAWN_DUP2, reply_w, self.REPLY_FD))
        try:
            self.pid = original("os", "posix_spawn")(argv[0], argv, env, file_actions=actions,
                                                     setsid=True)
        finally:
            close = original("os", "close")  # gevent's defers to a hub this thread may not run
            for fd in (stdin_r, out_w, reply_w):
                if fd >= 0:
                    close(fd)
        self.stdin = os.fdopen(stdin_w, "wb")
        self.stdout = os.fdopen(out_r, "rb")
        self.replies = os.fdopen(reply_r, "rb") if reply_pipe else None
        self.returncode: int | None = None
        self._lock = allocate_lock()

    def poll(self) -> int | None:
        with self._lock:
            if self.returncode is None:
                try:
                    pid, status = original("os", "waitpid")(self.pid, os.WNOHANG)
                except ChildProcessError:  # reaped elsewhere: it is gone
                    self.returncode = -1
                else:
                    if pid:
                        self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode


class NativeThread:
    """A real OS thread running `target()`; `join(timeout)` waits for it to return."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self.name = name
        self._target = target
        self._done = allocate_lock()
        self._done.acquire()

    def start(self) -> None:
        original("_thread", "start_new_thread")(self._run, ())

    def _run(self) -> None:
        try:
            self._target()
        finally:
            self._done.release()

    def join(self, timeout: float) -> bool:
        if self._done.acquire(timeout=max(timeout, 0.0)):
            self._done.release()
            return True
        return False
