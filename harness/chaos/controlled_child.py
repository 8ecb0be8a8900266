"""A target process that a scenario can steer: hand companies over, close it gracefully.

    python -m harness.chaos.controlled_child --target SPEC --cache-dir DIR --history FILE \\
        --layout FILE --companies co000,co001,... [--seed N] [--run-tag TAG] [--process-base N]

It runs like `harness.chaos.child` (the process client-crash kills): it opens the target from
its spec string on the DSN in `AUTHSTATE_CHAOS_DSN`, pairs the companies, writes their layout,
runs the workload with every operation in a history file flushed line by line, and reports on
stdout (`ready`, `running`, a `status` row every 50 ms, `error`). It also takes commands on
stdin, one JSON object per line:

    {"cmd": "serve", "companies": [...] | null}
        serve only these companies (null: all of them). The others finish the message they
        are in and then wait. Answered with {"event": "serving", ...} once they all wait.
    {"cmd": "close"}
        stop the workload (each company finishes its message), then close the target as an
        application shutting down gracefully does. Answered with {"event": "closed",
        "close_s", "journal_depth", "error"} (error: how close() failed, else null); then the
        process exits 0.

End of stdin (the parent died or let go) ends the process at once (exit 3), as for `child`.

`ControlledChild` (below) is the parent's side: the deploy-overlap scenario runs the old
instance in such a process, restart-degraded the process that is restarted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from harness.chaos.child import (
    DSN_ENV,
    EXIT_ORPHANED,
    STATUS_INTERVAL_S,
    _emit,
    child_arguments,
    layout_of,
    status_row,
    write_atomically,
)
from harness.chaos.child_process import ChildProcess
from harness.chaos.nemesis_api import ShapeContext
from harness.chaos.workload import Company, Workload
from harness.errors import HarnessError

CLOSE_TARGET_S = 30.0


class SteeredWorkload(Workload):
    """A workload whose companies can be held between two messages (handed to another
    instance) and given back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._serving = {c.id: asyncio.Event() for c in self.companies}
        self._held = {c.id: asyncio.Event() for c in self.companies}
        for event in self._serving.values():
            event.set()

    def serve(self, companies: Collection[str] | None) -> None:
        """Serve only `companies` (None: all); the others stop after their current message."""
        for c in self.companies:
            if companies is None or c.id in companies:
                self._serving[c.id].set()
            else:
                self._serving[c.id].clear()

    async def held(self, companies: Collection[str]) -> None:
        """Until every one of `companies` waits between two messages (none of its calls is in
        flight here), or the workload is not running."""
        if self.running:
            await asyncio.gather(*(self._held[c].wait() for c in companies))

    async def _before_message(self, c: Company) -> None:
        serving = self._serving[c.id]
        if serving.is_set():
            return
        self._held[c.id].set()
        waits = [asyncio.ensure_future(serving.wait()),
                 asyncio.ensure_future(self._stopping.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
            self._held[c.id].clear()


# -- the child ------------------------------------------------------------------------------------
def _read_commands(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[dict[str, Any]]) -> None:
    """Commands from stdin onto the loop; end of stdin ends the process."""

    def watch() -> None:
        try:
            for raw in sys.stdin.buffer:
                with contextlib.suppress(ValueError):
                    command = json.loads(raw)
                    if isinstance(command, dict):
                        loop.call_soon_threadsafe(queue.put_nowait, command)
        except (OSError, ValueError):
            pass
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="parent-commands", daemon=True).start()


async def _report_status(target: Any, history: Any, workload: Workload) -> None:
    while True:
        _emit({"event": "status", "t": time.monotonic(), **status_row(target),
               "ops": len(history), "stats": workload.stats()})
        await asyncio.sleep(STATUS_INTERVAL_S)


async def run(args: argparse.Namespace) -> int:
    from harness.chaos.workload import WorkloadConfig
    from harness.metrics.history import History
    from harness.targets import resolve_target

    dsn = args.dsn or os.environ.get(DSN_ENV)
    if not dsn:
        _emit({"event": "error", "message": f"no DSN: pass --dsn or set {DSN_ENV}"})
        return 2
    commands: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    _read_commands(asyncio.get_running_loop(), commands)
    spec = resolve_target(args.target)
    history = History(sink=args.history)
    target = await spec.open(dsn, cache_dir=Path(args.cache_dir))
    _emit({"event": "ready", "pid": os.getpid()})
    workload = SteeredWorkload(target, args.companies.split(","), history,
                               config=WorkloadConfig(seed=args.seed), run_tag=args.run_tag,
                               process_base=args.process_base)
    await workload.setup()
    write_atomically(Path(args.layout), layout_of(workload))
    workload.start()
    _emit({"event": "running", "t": workload.started_at})
    reporter = asyncio.create_task(_report_status(target, history, workload))
    try:
        async with asyncio.timeout(args.max_s):
            while True:
                command = await commands.get()
                if command.get("cmd") == "serve":
                    only = command.get("companies")
                    workload.serve(None if only is None else set(only))
                    left_out = [c.id for c in workload.companies
                                if only is not None and c.id not in only]
                    await workload.held(left_out)
                    _emit({"event": "serving", "t": time.monotonic(),
                           "companies": len(workload.companies) - len(left_out)})
                elif command.get("cmd") == "close":
                    break
    except TimeoutError:
        pass
    await workload.stop()
    reporter.cancel()
    depth = status_row(target)["journal_depth"]
    started = time.monotonic()
    error = None
    try:  # a close that fails or hangs is the target's doing: said, not a harness failure
        await asyncio.wait_for(target.close(), CLOSE_TARGET_S)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    history.close()
    _emit({"event": "closed", "t": time.monotonic(), "close_s": time.monotonic() - started,
           "journal_depth": depth, "stats": workload.stats(), "error": error})
    return 0


def main(argv: list[str] | None = None) -> int:
    args = child_arguments("python -m harness.chaos.controlled_child",
                           __doc__.split("\n\n")[0]).parse_args(argv)
    try:
        code = asyncio.run(run(args))
    except Exception as exc:
        _emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        code = 2
    # Out at once: the thread reading stdin holds its lock, and the interpreter's shutdown
    # would abort on it (SIGABRT) after everything of ours is already closed and flushed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# -- the parent's side ----------------------------------------------------------------------------
class ChildCommandFailed(HarnessError):
    """The steered child did not do what it was told (it died or did not answer in time)."""


class ControlledChild(ChildProcess):
    """A `controlled_child` process: `serve` / `close_gracefully` on top of what the
    client-crash child offers (status rows, running, kill, reap)."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.answers: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.closed: dict[str, Any] | None = None
        super().__init__(proc, log_path)

    @classmethod
    async def launch(cls, ctx: ShapeContext, *, cache_dir: Path, history: Path, layout: Path,
                     process_base: int, run_tag: str) -> ControlledChild:
        return await cls.spawn(ctx, "harness.chaos.controlled_child", cache_dir=cache_dir,
                               history=history, layout=layout, process_base=process_base,
                               run_tag=run_tag, log_name=f"{run_tag}.log")

    def _on_event(self, kind: Any, event: dict[str, Any]) -> None:
        if kind in ("serving", "closed"):
            if kind == "closed":
                self.closed = event
            self.answers.put_nowait({"event": kind, **event})
        else:
            super()._on_event(kind, event)

    async def _command(self, command: dict[str, Any], answer: str,
                       within_s: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(command) + "\n").encode())
            await self.proc.stdin.drain()
            async with asyncio.timeout(within_s):
                while True:
                    got = await self.answers.get()
                    if got["event"] == answer:
                        return got
        except (TimeoutError, OSError) as exc:
            raise ChildCommandFailed(
                f"the target's process did not answer {command['cmd']!r} within {within_s:g} s "
                f"(exit {self.proc.returncode}): {self.error or self.stderr_tail()}",
                hint="its log is in the scenario's work directory") from exc

    async def serve(self, companies: Sequence[str] | None, within_s: float) -> None:
        await self._command({"cmd": "serve", "companies": None if companies is None
                             else list(companies)}, "serving", within_s)

    async def close_gracefully(self, within_s: float) -> dict[str, Any]:
        """Ask the process to stop its workload and close the target; wait until it exited."""
        closed = await self._command({"cmd": "close"}, "closed", within_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.proc.wait(), within_s)
        return closed


if __name__ == "__main__":
    raise SystemExit(main())
