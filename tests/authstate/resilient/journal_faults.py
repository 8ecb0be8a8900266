"""File operations that fail or block on cue, for unit tests of the journal's logic.

`ScriptedOps` does the plain `os` calls, except that a test queues actions for a call name
("write", "fdatasync", "replace", ...): the next such call runs the action instead, in the
journal's I/O thread. These tests show what the journal does after a failed or stuck call;
whether a real disk behaves so is for the disk-fault scenarios.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.authstate.resilient.fileops import FileOps

SAFETY_S = 30.0  # a blocked call gives up after this, so a broken test cannot hang pytest

Action = Callable[..., Any]


def fail(code: int = errno.EIO) -> Action:
    def action(real: Callable[..., Any], *args: Any) -> Any:
        raise OSError(code, os.strerror(code))
    return action


def half() -> Action:
    """A short write: half of the bytes reach the file (then the caller writes the rest)."""
    def action(real: Callable[..., Any], fd: int, data: memoryview) -> int:
        return real(fd, data[: max(1, len(data) // 2)])
    return action


class Block:
    """Holds the call until `release()`; then does the real call, or `then` (e.g. `fail()`)."""

    def __init__(self, then: Action | None = None) -> None:
        self.entered = threading.Event()
        self._release = threading.Event()
        self.then = then
        self.released_by_safety = False

    def __call__(self, real: Callable[..., Any], *args: Any) -> Any:
        self.entered.set()
        if not self._release.wait(SAFETY_S):
            self.released_by_safety = True
        return (self.then or (lambda r, *a: r(*a)))(real, *args)

    def release(self) -> None:
        self._release.set()

    @property
    def holding(self) -> bool:
        return self.entered.is_set() and not self._release.is_set()

    async def wait_entered(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, SAFETY_S), "the call never came"


class ScriptedOps(FileOps):
    def __init__(self) -> None:
        self._actions: dict[str, list[Action]] = defaultdict(list)
        self.calls: list[str] = []

    def script(self, call: str, *actions: Action) -> None:
        self._actions[call].extend(actions)

    def clear(self) -> None:
        self._actions.clear()

    def _run(self, call: str, real: Callable[..., Any], *args: Any) -> Any:
        self.calls.append(call)
        queued = self._actions.get(call)
        if queued:
            return queued.pop(0)(real, *args)
        return real(*args)

    def open_append(self, path: Path) -> int:
        return self._run("open_append", super().open_append, path)  # type: ignore[no-any-return]

    def open_new(self, path: Path) -> int:
        return self._run("open_new", super().open_new, path)  # type: ignore[no-any-return]

    def write(self, fd: int, data: memoryview) -> int:
        return self._run("write", super().write, fd, data)  # type: ignore[no-any-return]

    def fdatasync(self, fd: int) -> None:
        self._run("fdatasync", super().fdatasync, fd)

    def fsync(self, fd: int) -> None:
        self._run("fsync", super().fsync, fd)

    def ftruncate(self, fd: int, size: int) -> None:
        self._run("ftruncate", super().ftruncate, fd, size)

    def replace(self, src: Path, dst: Path) -> None:
        self._run("replace", super().replace, src, dst)

    def fsync_dir(self, path: Path) -> None:
        self._run("fsync_dir", super().fsync_dir, path)
