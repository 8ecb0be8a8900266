"""The parent's side of a target process: the child client-crash and the disk scenarios kill
(`python -m harness.chaos.child`) and the steered one of deploy-overlap and restart-degraded
(`python -m harness.chaos.controlled_child`). Both report JSON lines on stdout (`running`,
`status`, `error`, ...) that are read here as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

from harness.chaos.child import DSN_ENV
from harness.chaos.nemesis_api import ShapeContext
from harness.errors import HarnessError
from harness.paths import import_root, project_dir

CHILD_PROCESS_BASE = 0
STATUS_COLUMNS = ("t", "mode", "breaker", "journal_depth", "conflicts")


class CrashScenarioError(HarnessError):
    """The client-crash course could not be run (the child failed before the fault)."""


class ChildProcess:
    """The child running the target; its stdout status lines are read as they come."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path
        self.rows: list[dict[str, Any]] = []
        self.last: dict[str, Any] = {}
        self.running_at: float | None = None
        self.running = asyncio.Event()
        self.journal_filled = asyncio.Event()  # a status row showed a non-empty journal
        self.error: str | None = None
        self.signal: dict[str, Any] = {}  # the child's `signal` line: node_pids or unavailable
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(cls, ctx: ShapeContext, history: Path, layout: Path,
                    extra: Sequence[str] = ()) -> ChildProcess:
        """The client-crash child on the scenario's cache_dir, its history followed; `extra`:
        more arguments (`--signal FILE`)."""
        return await cls.spawn(ctx, "harness.chaos.child", cache_dir=ctx.cache_dir,
                               history=history, layout=layout, process_base=CHILD_PROCESS_BASE,
                               run_tag=f"c{ctx.seed}", log_name="child.log", extra=extra)

    @classmethod
    async def spawn(cls, ctx: ShapeContext, module: str, *, cache_dir: Path, history: Path,
                    layout: Path, process_base: int, run_tag: str,
                    log_name: str, extra: Sequence[str] = ()) -> Self:
        """Start `python -m module` on the proxied DSN; the observer (if any) follows the
        history file the child records its operations to, from its first line."""
        log_path = ctx.work_dir / log_name
        # -P and PYTHONPATH: this very harness, never a `harness/` of the project directory
        # the child runs in (relative target paths start there)
        argv = [sys.executable, "-P", "-m", module,
                "--target", ctx.target_spec.spec, "--cache-dir", str(cache_dir),
                "--history", str(history), "--layout", str(layout),
                "--companies", ",".join(ctx.companies), "--seed", str(ctx.seed),
                "--run-tag", run_tag, "--process-base", str(process_base), *extra]
        stderr = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=stderr, cwd=project_dir(), start_new_session=True,
                env={**os.environ, DSN_ENV: ctx.env.proxy_dsn, "PYTHONUNBUFFERED": "1",
                     "PYTHONPATH": os.pathsep.join(
                         p for p in (str(import_root()), os.environ.get("PYTHONPATH")) if p)})
        finally:
            os.close(stderr)
        child = cls(proc, log_path)
        if ctx.observer is not None:  # the child's writes, watched as it records them
            await ctx.observer.follow_file(history)
        return child

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            try:
                event = json.loads(raw)
            except ValueError:
                continue
            self._on_event(event.pop("event", None), event)

    def _on_event(self, kind: Any, event: dict[str, Any]) -> None:
        if kind == "running":
            self.running_at = float(event["t"])
            self.running.set()
        elif kind == "status":
            self.last = event
            if self.journal_depth:
                self.journal_filled.set()
            self.rows.append({k: event.get(k) for k in STATUS_COLUMNS})
        elif kind == "error":
            self.error = str(event.get("message"))
        elif kind == "signal":
            self.signal.update(event)

    @property
    def journal_depth(self) -> int | None:
        depth = self.last.get("journal_depth")
        return depth if isinstance(depth, int) else None

    async def wait_running(self, within_s: float) -> None:
        exited = asyncio.ensure_future(self.proc.wait())
        running = asyncio.ensure_future(self.running.wait())
        try:
            await asyncio.wait({exited, running}, timeout=within_s,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            exited.cancel()
            running.cancel()
        if not self.running.is_set():
            await asyncio.sleep(0.1)  # let the reader take the child's last line
            raise CrashScenarioError(
                f"the child process running the target did not start its workload within "
                f"{within_s:g} s (exit {self.proc.returncode}): "
                f"{self.error or self.stderr_tail()}",
                hint="run the target through `harness run --suite property --target ...` "
                     "first; the child's log is in the scenario's work directory")

    def stderr_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:].strip() or "(no output)"
        except OSError:
            return "(no log)"

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)

    async def reap(self) -> None:
        self.kill()
        with contextlib.suppress(ProcessLookupError, OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        await self.proc.wait()
        with contextlib.suppress(Exception):  # the reader ends at EOF of the dead child
            await asyncio.wait_for(self._reader, 5)
