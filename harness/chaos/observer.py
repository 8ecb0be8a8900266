"""The observer: reads durable state from outside the store while a scenario runs.

It runs in a process of its own (harness.chaos.observer_process; `Observer` is the parent's
handle), so its reads and digests never stall the event loop that drives the target. It
follows the operation histories as they are recorded (history files, tailed as they grow) and,
every ~100 ms, reads the keys that matter with its own reader:

- every key with an acknowledged write not yet seen durable (its value, or a later one):
  recovery is measured from these reads, not from what the store says;
- every key with an indeterminate write (it may still land: a late write must be seen);
- watched groups (the 812 keys of reset-mid-write's bulk write), every 50 ms.

The reader is direct (`SqlStateReader`: its own connection straight to PostgreSQL, never
through the fault proxy or the store) or any `StateReader` (a fresh instance of the target for
stores with their own schema). What it saw goes into `harness.metrics.observations`; the
analyses (durable times, late writes, torn reads, observed RTO/MTTD) are pure functions of it
and the history (harness/metrics). A path probe (harness.chaos.path_probe) runs beside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from harness.chaos.path_probe import PathProbe
from harness.errors import HarnessError
from harness.metrics.bulk import collector_paused
from harness.metrics.history import WRITES, History, KeyRef
from harness.metrics.observations import Group, GroupSample, Observations, Probe, StateKey
from harness.observe import DurableReader

log = logging.getLogger("harness.chaos")

INTERVAL_S = 0.1
GROUP_INTERVAL_S = 0.05
READ_TIMEOUT_S = 10.0  # one round's read (a fresh instance of a foreign store is slow)
OPEN_READER_TIMEOUT_S = 90.0
NEVER = 1 << 62
OBSERVER_DSN_ENV = "AUTHSTATE_OBSERVER_DSN"  # env, not argv: a DSN may carry a password
OBSERVER_PROBE_ENV = "AUTHSTATE_OBSERVER_PROBE_DSN"
OBSERVER_TARGET_ENV = "AUTHSTATE_OBSERVER_TARGET"
STUCK_NS = 5_000_000_000  # a write in flight this long is watched as indeterminate


class StateReader(Protocol):
    """Reads durable state: digest per (company, key ref) asked for; None = absent. Keys it
    could not read this time are left out (unknown, not absent)."""

    mode: str

    async def read(self, wanted: Mapping[str, Sequence[KeyRef]]) -> dict[StateKey, str | None]:
        ...


class ReadFailed(Exception):
    """Nothing could be read this round (the database itself away: process faults)."""


class SampledState:
    """A `harness.observe.DurableReader` (the harness's tables read directly, a fresh instance
    of the target, or its snapshot hook) as the observer's `StateReader`."""

    def __init__(self, reader: DurableReader) -> None:
        self.reader = reader
        self.mode = reader.mode

    @property
    def snapshot_ns(self) -> int | None:
        """When the values just read were certainly durable (the SQL reader's statement
        snapshot); None: only the read's end says so (a fresh instance of the target)."""
        return getattr(self.reader, "snapshot_ns", None)

    def abort(self) -> None:
        """Drop the reader's connection (a read that never answered)."""
        abort = getattr(self.reader, "abort", None)
        if callable(abort):
            abort()

    async def read(self, wanted: Mapping[str, Sequence[KeyRef]]) -> dict[StateKey, str | None]:
        got = await self.reader.sample(wanted)
        errors = [r.error for r in got.values() if r.error is not None]
        if errors and len(errors) == len(got):
            raise ReadFailed(errors[0])
        return {(company, ref): value for company, read in got.items() if read.error is None
                for ref, value in read.values.items()}


@dataclass
class _Write:
    company: str
    value: dict[KeyRef, str | None]
    invoke_ns: int
    outcome: str | None = None
    complete_ns: int | None = None


@dataclass
class _KeyWatch:
    """What the observer still needs to see of one key."""

    producers: dict[str, tuple[int, int]] = field(default_factory=dict)  # digest: invoke, done
    deletes: list[tuple[int, int]] = field(default_factory=list)  # invoke, done of deletes
    waiting: list[int] = field(default_factory=list)  # invoke of acked writes not yet seen
    indeterminate: bool = False  # a write that may still land: watch to the end

    @property
    def wanted(self) -> bool:
        return bool(self.waiting) or self.indeterminate

    def seen(self, found: str | None, end_ns: int) -> None:
        if found is None:
            done = max((d for i, d in self.deletes if i < end_ns), default=-1)
        else:
            invoke, done = self.producers.get(found, (NEVER, -1))
            if invoke >= end_ns:
                done = -1
        self.waiting = [w for w in self.waiting if done < w]


class _FileFeed:
    """The new complete lines of a history file another process is writing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def events(self) -> list[dict[str, Any]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        events = []
        for line in lines:
            with contextlib.suppress(ValueError):
                event = orjson.loads(line)
                if isinstance(event, dict) and event.get("type") != "header":
                    events.append(event)
        return events



class ObserverCore:
    """The observing itself (runs in the observer process, harness.chaos.observer_process):
    follows history files, reads the watched keys every round, keeps what was seen in a
    compact form (key ids; per round the ids read and the values that changed)."""

    def __init__(self, open_reader: Callable[[list[str]], Awaitable[StateReader]], *,
                 probe_dsn: str | None = None, interval_s: float = INTERVAL_S) -> None:
        """`open_reader(companies)`: called once, at the first round with companies to read
        (after the workload's set-up, so a reader choosing its mode finds their data)."""
        self._open_reader = open_reader
        self.reader: StateReader | None = None
        self.interval_s = interval_s
        self.probes: list[Probe] = []
        self.probe = None if probe_dsn is None else PathProbe(probe_dsn, self.probes)
        self._files: list[_FileFeed] = []
        self._dirs: list[tuple[Path, str]] = []
        self._writes: dict[tuple[int, int], _Write] = {}
        self._keys: dict[StateKey, _KeyWatch] = {}
        self._stuck: set[tuple[int, int]] = set()
        self.groups: list[Group] = []
        self.key_ids: dict[StateKey, int] = {}
        self._last: dict[int, str | None] = {}
        self.rounds: list[list[Any]] = []  # [start, end, ids read, [[id, digest], ...]]
        self.failed_rounds = 0
        self.errors = 0
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one round at a time: the background loop, `round` asks

    def follow_file(self, path: Path) -> None:
        if all(feed.path != path for feed in self._files):
            self._files.append(_FileFeed(path))

    def follow_dir(self, path: Path, pattern: str) -> None:
        """Follow every file matching `pattern` in `path`, those created later too (the
        history files of processes that start while the run goes on: Locust's workers)."""
        self._dirs.append((path, pattern))

    def watch_group(self, name: str, company: str, values: Mapping[KeyRef, str | None],
                    op: int | None = None) -> None:
        self.groups.append(Group(name, company, dict(values), op))

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="observer-rounds")
            if self.probe is not None:
                self.probe.start()

    async def stop(self) -> None:
        """Stop the background work, then one last round (bounded: an abandoned read may
        still hold the reader)."""
        await self.stop_quietly()
        try:
            await asyncio.wait_for(self.round(), 2 * READ_TIMEOUT_S)
        except TimeoutError:
            self.errors += 1
            self.last_error = "the last round did not finish within " \
                              f"{2 * READ_TIMEOUT_S:g} s (a read stuck in the database)"

    async def stop_quietly(self) -> None:
        """Stop the background work without a last round (the parent went away). Bounded: a
        round stuck in the database is abandoned, not waited for."""
        task, self._task = self._task, None
        if self.probe is not None:
            await self.probe.stop()
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=READ_TIMEOUT_S)

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            await self.round()
            interval = GROUP_INTERVAL_S if self.groups else self.interval_s
            await asyncio.sleep(max(0.005, interval - (time.monotonic() - started)))

    def waiting(self) -> int:
        """Acknowledged writes (per key) not yet seen durable as of the last round."""
        return sum(len(w.waiting) for w in self._keys.values())

    async def round(self) -> None:
        """Ingest new history events, read the watched keys once, keep what was seen."""
        async with self._lock:
            await self._round()

    async def _round(self) -> None:
        self._ingest()
        wanted: dict[str, set[KeyRef]] = {}
        for (company, ref), watch in self._keys.items():
            if watch.wanted:
                wanted.setdefault(company, set()).add(ref)
        for group in self.groups:
            wanted.setdefault(group.company, set()).update(group.values)
        if not wanted:
            return
        if self.reader is None:  # a fresh instance of a foreign store may take a while
            self.reader = await asyncio.wait_for(self._open_reader(sorted(wanted)),
                                                 OPEN_READER_TIMEOUT_S)
        start = time.monotonic_ns()
        try:
            found = await self._bounded_read({c: sorted(refs) for c, refs in wanted.items()})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database itself away (process faults): next round
            self.errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"[:200]
            self.failed_rounds += 1
            return
        end = time.monotonic_ns()
        snapshot = getattr(self.reader, "snapshot_ns", None)
        if snapshot is not None and start <= snapshot <= end:
            end = snapshot  # durable by the statement's snapshot, not by the end of transfer
        ids: list[int] = []
        changed: list[list[Any]] = []
        for key, value in found.items():
            key_id = self.key_ids.setdefault(key, len(self.key_ids))
            ids.append(key_id)
            if key_id not in self._last or self._last[key_id] != value:
                self._last[key_id] = value
                changed.append([key_id, value])
            watch = self._keys.get(key)
            if watch is not None:
                watch.seen(value, end)
        self.rounds.append([start, end, ids, changed])
        for group in self.groups:
            applied = sum(1 for ref, want in group.values.items()
                          if found.get((group.company, ref)) == want)
            group.samples.append(GroupSample(start, end, applied, len(group.values)))

    async def _bounded_read(self, wanted: Mapping[str, Sequence[KeyRef]]
                            ) -> dict[StateKey, str | None]:
        """One read within READ_TIMEOUT_S. A read that does not answer is abandoned, not
        awaited (cancelling a driver call can itself wait on the server), and the reader's
        connection is dropped so the next round starts clean."""
        assert self.reader is not None
        task = asyncio.ensure_future(self.reader.read(wanted))
        done, _ = await asyncio.wait({task}, timeout=READ_TIMEOUT_S)
        if not done:
            task.cancel()
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # never unseen
            abort = getattr(self.reader, "abort", None)
            if callable(abort):
                abort()
            raise TimeoutError(f"the read did not answer within {READ_TIMEOUT_S:g} s")
        return task.result()

    def _ingest(self) -> None:
        for path, pattern in self._dirs:
            for found in sorted(path.glob(pattern)):
                self.follow_file(found)
        for source, feed in enumerate(self._files):
            for event in feed.events():
                self._event(source, event)
        stuck_before = time.monotonic_ns() - STUCK_NS
        for key, write in self._writes.items():
            if write.invoke_ns < stuck_before and key not in self._stuck:
                self._stuck.add(key)  # its process died or it hangs: it may land any time
                for ref in write.value:
                    self._keys[(write.company, ref)].indeterminate = True

    def _event(self, source: int, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "invoke" and event.get("f") in WRITES:
            value = {(row[0], row[1]): row[2] for row in event.get("value") or ()}
            write = _Write(str(event["company"]), value, int(event["time"]))
            self._writes[(source, int(event["index"]))] = write
            for ref, found in value.items():
                watch = self._keys.setdefault((write.company, ref), _KeyWatch())
                if found is None:
                    watch.deletes.append((write.invoke_ns, NEVER))
                else:
                    watch.producers[found] = (write.invoke_ns, NEVER)
        elif kind in ("ok", "fail", "info"):
            write = self._writes.pop((source, int(event["op"])), None)
            if write is None:
                return
            done = int(event["time"])
            for ref, found in write.value.items():
                watch = self._keys[(write.company, ref)]
                if kind == "fail":
                    _forget(watch, write, found)
                elif kind == "info":
                    watch.indeterminate = True
                else:
                    _complete(watch, write, found, done)
                    watch.waiting.append(write.invoke_ns)

    def dump(self) -> dict[str, Any]:
        """Everything seen, JSON-ready (the parent rebuilds `Observations` from it)."""
        keys = sorted(self.key_ids.items(), key=lambda item: item[1])
        return {"mode": getattr(self.reader, "mode", None), "interval_s": self.interval_s,
                "keys": [[c, r[0], r[1]] for (c, r), _ in keys], "rounds": self.rounds,
                "probes": [[p.start_ns, p.end_ns, p.down, p.detail] for p in self.probes],
                "groups": [{"name": g.name, "company": g.company, "op": g.op,
                            "values": [[r[0], r[1], d] for r, d in g.values.items()],
                            "samples": [[x.start_ns, x.end_ns, x.applied, x.total]
                                        for x in g.samples]} for g in self.groups],
                "failed_rounds": self.failed_rounds, "errors": self.errors,
                "last_error": self.last_error, "waiting": self.waiting()}


def _complete(watch: _KeyWatch, write: _Write, found: str | None, done: int) -> None:
    if found is None:
        watch.deletes = [(i, done if i == write.invoke_ns else d) for i, d in watch.deletes]
    else:
        watch.producers[found] = (write.invoke_ns, done)


def _forget(watch: _KeyWatch, write: _Write, found: str | None) -> None:
    if found is None:
        watch.deletes = [(i, d) for i, d in watch.deletes if i != write.invoke_ns]
    else:
        watch.producers.pop(found, None)


def observations_from(dump: Mapping[str, Any]) -> Observations:
    """`Observations` from an `ObserverCore.dump()`."""
    out = Observations(mode=str(dump.get("mode", "sql")),
                       interval_s=float(dump.get("interval_s", INTERVAL_S)))
    keys: list[StateKey] = [(c, (t, i)) for c, t, i in dump.get("keys", ())]
    last: dict[int, str | None] = {}
    for start, end, ids, changed in dump.get("rounds", ()):
        for key_id, value in changed:
            last[key_id] = value
        out.record(start, end, {keys[k]: last.get(k) for k in ids})
    for _ in range(int(dump.get("failed_rounds", 0))):
        out.failed_round()
    for s, e, down, detail in dump.get("probes", ()):
        out.probe(Probe(s, e, bool(down), str(detail)))
    for g in dump.get("groups", ()):
        group = out.group(Group(g["name"], g["company"],
                                {(t, i): d for t, i, d in g["values"]}, g.get("op")))
        group.samples = [GroupSample(*x) for x in g["samples"]]
    return out


class Observer:
    """The parent's handle on an observer process (harness.chaos.observer_process).

    The observer is a process of its own so that its reads and digests never stall the event
    loop that drives the target (a stalled loop would show up as slow calls the store never
    made). It follows history FILES: give every History it must watch a sink."""

    def __init__(self, admin_dsn: str, work_dir: Path, *, target: str,
                 probe_dsn: str | None = None, mode: str = "auto",
                 interval_s: float = INTERVAL_S) -> None:
        """`admin_dsn`: straight to PostgreSQL, this run's database (never through the fault
        proxy, never the target's role, which a fault may lock out); `target`: the target's
        spec string, for readers that open a fresh instance of it; `mode`: the reader's."""
        self.admin_dsn = admin_dsn
        self.target = target
        self.mode = mode
        self.probe_dsn = probe_dsn
        self.interval_s = interval_s
        self.work_dir = work_dir
        self.observations = Observations(interval_s=interval_s)
        self._proc: asyncio.subprocess.Process | None = None
        self._replies: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next = 0
        self._reader: asyncio.Task[None] | None = None
        self._stopped = False
        self.summary_data: dict[str, Any] = {}

    async def open(self) -> Observer:
        log_path = self.work_dir / "observer.log"
        stderr = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "harness.chaos.observer_process",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
                env={**os.environ, OBSERVER_DSN_ENV: self.admin_dsn,
                     OBSERVER_PROBE_ENV: self.probe_dsn or "", OBSERVER_TARGET_ENV: self.target})
        finally:
            os.close(stderr)
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self._call("hello", interval_s=self.interval_s, mode=self.mode,
                         work_dir=str(self.work_dir))
        return self

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for line in self._proc.stdout:
            with contextlib.suppress(ValueError):
                reply = orjson.loads(line)
                future = self._replies.pop(int(reply.get("id", -1)), None)
                if future is not None and not future.done():
                    future.set_result(reply)
        for future in self._replies.values():
            if not future.done():
                future.set_exception(ObserverFailed(self._tail()))
        self._replies.clear()

    def _dump_stacks(self) -> None:
        """Ask the observer to print every thread's stack into its log (faulthandler)."""
        if self._proc is not None and self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._proc.pid, signal.SIGUSR1)

    def _tail(self) -> str:
        with contextlib.suppress(OSError):
            text = (self.work_dir / "observer.log").read_text(errors="replace")
            return text[-1500:].strip() or "(no output)"
        return "(no log)"

    async def _call(self, command: str, timeout_s: float = 60.0, **args: Any) -> dict[str, Any]:
        if self._proc is None or self._proc.stdin is None or self._proc.returncode is not None:
            raise ObserverFailed(f"the observer process is not running: {self._tail()}")
        self._next += 1
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._replies[self._next] = future
        self._proc.stdin.write(orjson.dumps({"id": self._next, "command": command, **args})
                               + b"\n")
        await self._proc.stdin.drain()
        try:
            reply = await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            self._dump_stacks()
            await asyncio.sleep(0.5)
            raise ObserverFailed(f"the observer did not answer '{command}' within "
                                 f"{timeout_s:g} s; its log ends: {self._tail()}") from None
        if reply.get("error"):
            raise ObserverFailed(str(reply["error"]))
        return reply

    # -- what to follow ----------------------------------------------------------------------
    async def follow(self, history: History) -> None:
        """Watch the writes recorded into `history` (it must have a sink file)."""
        if history.sink_path is None:
            raise ValueError("the observer follows history files: give the History a sink")
        await self.follow_file(history.sink_path)

    async def follow_file(self, path: Path) -> None:
        await self._call("follow", path=str(path))

    async def follow_dir(self, path: Path, pattern: str) -> None:
        """Follow every history file matching `pattern` in `path`, later ones too."""
        await self._call("follow-dir", path=str(path), pattern=pattern)

    async def watch_group(self, name: str, company: str, values: Mapping[KeyRef, str | None],
                          op: int | None = None) -> None:
        """Read these keys together every 50 ms from now on: a torn multi-key write shows."""
        await self._call("group", name=name, company=company, op=op,
                         values=[[r[0], r[1], d] for r, d in values.items()])

    # -- running -----------------------------------------------------------------------------
    async def start(self) -> None:
        await self._call("start")

    async def round(self) -> None:
        """One round now (e.g. after set-up: every write so far confirmed before traffic)."""
        await self._call("round", timeout_s=120.0)

    async def waiting(self) -> int:
        return int((await self._call("waiting"))["waiting"])

    async def stop(self) -> Observations:
        """Stop observing; what was seen is in `observations` (also returned)."""
        if self._stopped:
            return self.observations
        self._stopped = True
        out = self.work_dir / "observations.json"
        await self._call("stop", path=str(out), timeout_s=120.0)
        dump = orjson.loads(await asyncio.to_thread(out.read_bytes))
        with collector_paused():
            self.observations = observations_from(dump)
        self.summary_data = {k: dump.get(k) for k in ("failed_rounds", "errors", "last_error",
                                                        "waiting")}
        return self.observations

    async def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(Exception):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5.0)

    def summary(self) -> dict[str, Any]:
        return {**self.observations.summary(), **self.summary_data}


class ObserverFailed(HarnessError):
    """The observer process failed: the harness cannot judge this run (its own failure)."""


class ObserverThread:
    """An `Observer` for synchronous code (the load runner): its own event loop on a thread of
    its own, every method a blocking call into it."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="observer-client",
                                        daemon=True)
        self._thread.start()

    def call(self, coro: Awaitable[Any], timeout_s: float = 180.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)

    def close(self) -> None:
        try:
            self.call(self.observer.close(), 30.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10.0)
            self._loop.close()
