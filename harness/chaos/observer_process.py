"""The observer process: `python -m harness.chaos.observer_process` (started by
`harness.chaos.observer.Observer`, never by hand).

Reads JSON commands on stdin, one per line, and answers each on stdout with its `id`:
`hello {interval_s}`, `follow {path}` (a history file to tail), `follow-dir {path, pattern}`
(every history file matching, those created later too), `group {name, company, op,
values}`, `start` (observe in the background), `round` (one round now), `waiting` (how many
acknowledged writes are not yet seen durable), `stop {path}` (a last round, everything seen
written to `path` as JSON). The database DSN and the target's spec come in the environment
(a DSN may hold a password); the durable reader (harness.observe: the harness's tables, a
fresh instance of the target, or its snapshot hook) is opened at the first round. End of stdin
(the parent exited, even by SIGKILL) ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import functools
import os
import signal
import sys
from pathlib import Path
from typing import Any

import orjson

from harness.chaos.observer import (
    OBSERVER_DSN_ENV,
    OBSERVER_PROBE_ENV,
    OBSERVER_TARGET_ENV,
    ObserverCore,
    SampledState,
)
from harness.observe import open_reader
from harness.targets import resolve_target


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    core: ObserverCore | None = None
    admin_dsn = os.environ[OBSERVER_DSN_ENV]
    probe = os.environ.get(OBSERVER_PROBE_ENV) or None
    readers = contextlib.AsyncExitStack()

    async def open_state(mode: str, work_dir: Path, companies: list[str]) -> SampledState:
        """The durable reader, opened on the first round (after set-up: `auto` probes the
        companies' data); a fresh instance connects as the admin role, which no fault on the
        target's own role can lock out."""
        spec = resolve_target(os.environ[OBSERVER_TARGET_ENV])
        durable = await readers.enter_async_context(open_reader(
            spec, admin_dsn, work_dir / "observer-reader", mode=mode, admin_dsn=admin_dsn,
            companies=companies))
        return SampledState(durable)

    try:
        while line := await reader.readline():
            request = orjson.loads(line)
            reply: dict[str, Any] = {"id": request.get("id")}
            try:
                command = request.get("command")
                if command == "hello":
                    mode, work_dir = str(request.get("mode", "auto")), Path(request["work_dir"])
                    core = ObserverCore(
                        functools.partial(open_state, mode, work_dir),
                        probe_dsn=probe, interval_s=float(request.get("interval_s", 0.1)))
                    reply["pid"] = os.getpid()
                else:
                    assert core is not None, "hello first"
                    if command == "follow":
                        core.follow_file(Path(request["path"]))
                    elif command == "follow-dir":
                        core.follow_dir(Path(request["path"]), str(request["pattern"]))
                    elif command == "group":
                        core.watch_group(request["name"], request["company"],
                                         {(t, i): d for t, i, d in request["values"]},
                                         request.get("op"))
                    elif command == "start":
                        core.start()
                    elif command == "round":
                        await core.round()
                    elif command == "waiting":
                        reply["waiting"] = core.waiting()
                    elif command == "stop":
                        await core.stop()
                        await asyncio.to_thread(Path(request["path"]).write_bytes,
                                                orjson.dumps(core.dump()))
                    else:
                        raise ValueError(f"unknown command {command!r}")
            except Exception as exc:  # said to the parent, which raises ObserverFailed
                reply["error"] = f"{type(exc).__name__}: {exc}"
            sys.stdout.buffer.write(orjson.dumps(reply) + b"\n")
            sys.stdout.buffer.flush()
    finally:
        if core is not None:
            await core.stop_quietly()
        await readers.aclose()


def main() -> None:
    # the parent sends SIGUSR1 when a command goes unanswered: every stack into the log
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    asyncio.run(_serve())


if __name__ == "__main__":
    main()
