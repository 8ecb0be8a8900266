"""Operation history, Jepsen-style: what every worker asked the store, and what came back.

Each operation is an *invoke* event followed by exactly one completion:

- ``ok``   it happened (a write is acknowledged; a read returned ``result``);
- ``fail`` it definitely did not happen (the store said ``outcome="failed"``);
- ``info`` unknown: it may have happened, now or later (timeout, connection lost mid-commit).

An invoke without a completion (the recording process was killed) is read back as pending and
treated like ``info``. Jepsen's convention, which the driver follows and this module only
records: a process whose operation ended ``info`` is considered crashed, because that operation
may still take effect concurrently with anything later; the driver gives the worker a new
process id for its next operation.

Values never enter a history: writes carry one opaque *digest* per key ref (``None`` = delete),
reads one digest per key ref returned (``None`` = absent). Digests of unique values let the
checker attribute every read to the write that produced it. Error texts are short
(exception type and message) and must not hold values either.

Nemesis start/stop events share the same index and clock, so one file tells the whole story.
Times are ``time.monotonic_ns()``: CLOCK_MONOTONIC is shared by the processes of one host, so a
child process's history lines up with the parent's fault windows.

The optional file sink writes one JSON line per event and hands it to the OS at once (no
user-space buffering): a process killed with SIGKILL leaves every event it recorded, at most
with a torn last line, which the reader drops and reports (``History.torn_tail``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

SCHEMA_VERSION = 1

KeyRef = tuple[str, str]
"""(key_type, key_id); creds are ``CREDS``."""

CREDS: KeyRef = ("creds", "")

READ_KEYS = "read-keys"
WRITE_KEYS = "write-keys"
READ_CREDS = "read-creds"
WRITE_CREDS = "write-creds"
FUNCTIONS = frozenset({READ_KEYS, WRITE_KEYS, READ_CREDS, WRITE_CREDS})
WRITES = frozenset({WRITE_KEYS, WRITE_CREDS})
READS = frozenset({READ_KEYS, READ_CREDS})

Outcome = Literal["ok", "fail", "info"]
ERROR_MAX_CHARS = 200


class HistoryFormatError(ValueError):
    """A history file that cannot be read back (not a torn last line: damage in the middle)."""


def digest(value: str | bytes | object) -> str:
    """A short, stable digest of a value (16 hex chars of SHA-256).

    Strings and bytes are hashed as they are; anything else as canonical JSON (sorted keys,
    compact separators, bytes as hex), so the driver's value and the value read back from
    PostgreSQL digest alike when they decode to the same object.
    """
    if isinstance(value, str):
        data = value.encode()
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    else:
        data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          default=_json_default).encode()
    return hashlib.sha256(data).hexdigest()[:16]


def _json_default(obj: object) -> object:
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj).hex()
    raise TypeError(f"cannot digest a {type(obj).__name__}")


def error_text(exc: BaseException) -> str:
    """``"Type: message"``, cut to ERROR_MAX_CHARS: what a history keeps of an exception."""
    message = str(exc)
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return _short(text)


def _short(text: str) -> str:
    text = str(text)
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"


@dataclasses.dataclass(frozen=True, slots=True)
class Op:
    """One operation: its invoke event joined with its completion (if any was recorded)."""

    index: int                      # index of the invoke event: the op's id in reports
    process: int
    company: str
    f: str
    keys: tuple[KeyRef, ...]
    value: Mapping[KeyRef, str | None] | None  # writes: digest per key ref, None = delete
    invoke_ns: int
    outcome: Outcome | None = None  # None: no completion recorded (the recorder died)
    complete_ns: int | None = None
    result: Mapping[KeyRef, str | None] | None = None  # ok reads: digest per key, None = absent
    source: str | None = None       # "db" | "cache" | "journal" | None (target did not say)
    error: str | None = None
    meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    complete_meta: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    complete_index: int | None = None

    @property
    def is_write(self) -> bool:
        return self.f in WRITES

    @property
    def is_read(self) -> bool:
        return self.f in READS

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def indeterminate(self) -> bool:
        """info, or never completed: may have taken effect, at any time after its invoke."""
        return self.outcome in ("info", None)

    @property
    def latency_ns(self) -> int | None:
        return None if self.complete_ns is None else self.complete_ns - self.invoke_ns


@dataclasses.dataclass(frozen=True, slots=True)
class NemesisEvent:
    index: int
    kind: str
    phase: Literal["start", "stop"]
    time_ns: int
    params: Mapping[str, Any]


class OpHandle:
    """Returned by `History.invoke`; complete it exactly once with ok, fail, info or raised."""

    __slots__ = ("_done", "_history", "f", "index", "process")

    def __init__(self, history: History, index: int, process: int, f: str) -> None:
        self._history = history
        self.index = index
        self.process = process
        self.f = f
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def ok(self, result: Mapping[KeyRef, str | None] | None = None, source: str | None = None,
           *, meta: Mapping[str, Any] | None = None, at_ns: int | None = None) -> None:
        """The op happened. Reads pass ``result`` (key refs they asked for and did not get
        back are recorded as absent); ``source`` is where the target served it from."""
        self._history._complete(self, "ok", result=result, source=source, meta=meta,
                                at_ns=at_ns)

    def fail(self, error: str, *, meta: Mapping[str, Any] | None = None,
             at_ns: int | None = None) -> None:
        """The op definitely did not happen."""
        self._history._complete(self, "fail", error=error, meta=meta, at_ns=at_ns)

    def info(self, error: str, *, meta: Mapping[str, Any] | None = None,
             at_ns: int | None = None) -> None:
        """Unknown whether the op happened (it may still): the process is now crashed."""
        self._history._complete(self, "info", error=error, meta=meta, at_ns=at_ns)

    def raised(self, exc: BaseException, *, meta: Mapping[str, Any] | None = None,
               at_ns: int | None = None, outcome: str | None = None) -> Outcome:
        """Complete from an exception: ``fail`` when it says ``outcome == "failed"`` (the
        harness's StoreError) or the caller classified it so (``outcome="failed"``: a
        refusal, see harness/authstate/foreign_errors.py), else ``info`` (Jepsen: an
        exception means unknown). Returns the outcome recorded."""
        if (outcome or getattr(exc, "outcome", None)) == "failed":
            self.fail(error_text(exc), meta=meta, at_ns=at_ns)
            return "fail"
        self.info(error_text(exc), meta=meta, at_ns=at_ns)
        return "info"


class History:
    """An append-only, thread-safe list of events with one global index.

    ``sink``: a path; every event is appended to it as one JSON line as it is recorded (the
    file must be new or empty). ``clock``: nanosecond clock, ``time.monotonic_ns`` by default.
    Every recording method takes ``at_ns`` to record a time measured elsewhere (tests, or a
    fault window's own timestamps).
    """

    def __init__(self, sink: str | Path | None = None, *,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self._events: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._clock = clock
        self._pending: dict[int, int] = {}      # process -> index of its open invoke
        self._ops_cache: list[Op] | None = None
        self.header: dict[str, Any] = {"type": "header", "schema_version": SCHEMA_VERSION,
                                       "clock": "monotonic_ns", "pid": os.getpid(),
                                       "wall": time.time()}
        self.torn_tail: str | None = None       # set by read_jsonl when it dropped a torn line
        self._sink: Any = None
        self.sink_path: Path | None = None
        if sink is not None:
            self._open_sink(Path(sink))

    # -- recording -------------------------------------------------------------------------

    def invoke(self, process: int, company: str, f: str, keys: Sequence[KeyRef],
               value: Mapping[KeyRef, str | None] | None = None, *,
               meta: Mapping[str, Any] | None = None, at_ns: int | None = None) -> OpHandle:
        """Record that ``process`` starts ``f`` on ``keys`` of ``company``.

        Writes pass ``value`` with one digest per key ref (None = delete) and nothing else;
        reads pass no value. One process has at most one op in flight.
        """
        if f not in FUNCTIONS:
            raise ValueError(f"unknown op {f!r}; use one of {sorted(FUNCTIONS)}")
        refs = [_key_ref(k) for k in keys]
        if f in (READ_CREDS, WRITE_CREDS) and refs != [CREDS]:
            raise ValueError(f"{f} takes keys=[CREDS] ({CREDS!r}), got {refs!r}")
        event: dict[str, Any] = {"type": "invoke", "process": int(process),
                                 "company": str(company), "f": f,
                                 "keys": [list(k) for k in refs]}
        if f in WRITES:
            if value is None:
                raise ValueError(f"{f} needs value: a digest (or None = delete) per key ref")
            vals = {_key_ref(k): v for k, v in value.items()}
            if set(vals) != set(refs) or len(refs) != len(set(refs)):
                raise ValueError(f"{f}: value must name each key ref of keys exactly once")
            event["value"] = [[k[0], k[1], _digest_or_none(vals[k])] for k in refs]
        elif value is not None:
            raise ValueError(f"{f} is a read: record what it returned with ok(result=...)")
        if meta:
            event["meta"] = dict(meta)
        with self._lock:
            if process in self._pending:
                raise ValueError(f"process {process} already has op {self._pending[process]} "
                                 "in flight; one process runs one op at a time")
            event["time"] = self._clock() if at_ns is None else int(at_ns)
            index = self._append(event)
            self._pending[process] = index
        return OpHandle(self, index, int(process), f)

    def nemesis(self, kind: str, phase: Literal["start", "stop"], *, at_ns: int | None = None,
                **params: Any) -> int:
        """Record a fault's start or stop (e.g. ``h.nemesis("sever", "start", proxy="pg")``)."""
        if phase not in ("start", "stop"):
            raise ValueError(f"nemesis phase must be 'start' or 'stop', got {phase!r}")
        event: dict[str, Any] = {"type": "nemesis", "f": phase, "kind": str(kind)}
        if params:
            event["params"] = dict(params)
        with self._lock:
            event["time"] = self._clock() if at_ns is None else int(at_ns)
            return self._append(event)

    def _complete(self, handle: OpHandle, outcome: Outcome, *,
                  result: Mapping[KeyRef, str | None] | None = None, source: str | None = None,
                  error: str | None = None, meta: Mapping[str, Any] | None = None,
                  at_ns: int | None = None) -> None:
        event: dict[str, Any] = {"type": outcome, "op": handle.index, "process": handle.process}
        if outcome == "ok":
            if result is not None:
                if handle.f not in READS:
                    raise ValueError(f"op {handle.index} is a {handle.f}: only reads "
                                     "have a result")
                event["result"] = self._result_rows(handle.index, result)
            if source is not None:
                event["source"] = str(source)
        else:
            event["error"] = _short(error if error is not None else outcome)
        if meta:
            event["meta"] = dict(meta)
        with self._lock:
            if handle._done:
                raise RuntimeError(f"op {handle.index} was already completed; "
                                   "an op has exactly one completion")
            event["time"] = self._clock() if at_ns is None else int(at_ns)
            invoked = self._events[handle.index]["time"]
            if event["time"] < invoked:
                raise ValueError(f"op {handle.index} completes at {event['time']} ns, before "
                                 f"its invoke at {invoked} ns; use one monotonic clock")
            handle._done = True
            self._pending.pop(handle.process, None)
            self._append(event)

    def _result_rows(self, index: int, result: Mapping[KeyRef, str | None]) -> list[list[Any]]:
        got = {_key_ref(k): _digest_or_none(v) for k, v in result.items()}
        asked = [tuple(k) for k in self._events[index]["keys"]]  # invoke events never change
        rows = [[k[0], k[1], got.pop(k, None)] for k in asked]
        rows.extend([k[0], k[1], v] for k, v in got.items())
        return rows

    def _append(self, event: dict[str, Any]) -> int:
        # caller holds the lock
        index = len(self._events)
        event["index"] = index
        self._events.append(event)
        self._ops_cache = None
        if self._sink is not None:
            self._write_line(event)
        return index

    # -- sink ------------------------------------------------------------------------------

    def _open_sink(self, path: Path) -> None:
        if path.exists() and path.stat().st_size > 0:
            raise FileExistsError(f"history sink {path} is not empty; give each process its "
                                  "own file and combine them with History.merge")
        path.parent.mkdir(parents=True, exist_ok=True)
        self._sink = open(path, "ab", buffering=0)  # closed by close()
        self.sink_path = path
        self._write_line(self.header)

    def _write_line(self, event: Mapping[str, Any]) -> None:
        data = memoryview((json.dumps(event, separators=(",", ":")) + "\n").encode())
        while data:  # unbuffered: every line reaches the OS before the call returns
            written = self._sink.write(data)
            data = data[written:]

    def close(self) -> None:
        """Close the sink (recording is still possible in memory afterwards)."""
        with self._lock:
            if self._sink is not None:
                self._sink.close()
                self._sink = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------------------

    def events(self) -> list[dict[str, Any]]:
        """Copies of the events in index order (JSON-ready: key refs as lists)."""
        with self._lock:
            return [dict(e) for e in self._events]

    def events_from(self, cursor: int) -> list[dict[str, Any]]:
        """Events recorded since the first `cursor` ones (the live observer's feed)."""
        with self._lock:
            return self._events[cursor:]

    def __len__(self) -> int:
        return len(self._events)

    def ops(self) -> list[Op]:
        """Every operation (invoke joined with its completion), in invoke order."""
        with self._lock:
            if self._ops_cache is None:
                self._ops_cache = _build_ops(self._events)
            return self._ops_cache

    def nemesis_events(self) -> list[NemesisEvent]:
        with self._lock:
            return [NemesisEvent(e["index"], e["kind"], e["f"], e["time"],
                                 dict(e.get("params") or {}))
                    for e in self._events if e["type"] == "nemesis"]

    def fault_windows(self) -> list[tuple[str, int, int | None]]:
        """(kind, start_ns, stop_ns | None) from nemesis events, a stop closing the oldest open
        start of the same kind."""
        windows: list[list[Any]] = []
        open_by_kind: dict[str, list[int]] = {}
        for event in self.nemesis_events():
            if event.phase == "start":
                open_by_kind.setdefault(event.kind, []).append(len(windows))
                windows.append([event.kind, event.time_ns, None])
            elif open_by_kind.get(event.kind):
                windows[open_by_kind[event.kind].pop(0)][2] = event.time_ns
        return [(k, s, e) for k, s, e in windows]

    def span_ns(self) -> tuple[int, int] | None:
        """(first, last) event time, None for an empty history."""
        with self._lock:
            if not self._events:
                return None
            times = [e["time"] for e in self._events]
        return min(times), max(times)

    def write_jsonl(self, path: str | Path) -> Path:
        """Write header + every event as JSON lines (atomically: temp file + rename)."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "w") as out:
            for event in [self.header, *self.events()]:
                out.write(json.dumps(event, separators=(",", ":")) + "\n")
        os.replace(tmp, target)
        return target

    @classmethod
    def read_jsonl(cls, path: str | Path) -> History:
        """Rebuild a history from a file; a torn last line is dropped and described in
        ``torn_tail``, damage anywhere else raises HistoryFormatError."""
        raw = Path(path).read_bytes()
        lines = raw.split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        torn: str | None = None
        records: list[dict[str, Any]] = []
        for number, line in enumerate(lines, 1):
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or "type" not in record:
                    raise ValueError("not an event object")
            except ValueError as exc:
                if number == len(lines):
                    torn = f"last line ({number}) torn: {len(line)} bytes dropped"
                    break
                raise HistoryFormatError(
                    f"{path}: line {number} is not a history event ({exc}); the file is "
                    "damaged in the middle, not just cut short: keep it for inspection and "
                    "rerun the scenario") from None
            records.append(record)
        history = cls()
        if records and records[0].get("type") == "header":
            history.header = records.pop(0)
            version = history.header.get("schema_version")
            if version != SCHEMA_VERSION:
                raise HistoryFormatError(f"{path}: history schema_version {version!r}, this "
                                         f"harness reads {SCHEMA_VERSION}; use the matching "
                                         "harness version")
        history._load(records)
        history.torn_tail = torn
        return history

    @classmethod
    def from_events(cls, events: Iterable[Mapping[str, Any]]) -> History:
        history = cls()
        history._load([dict(e) for e in events])
        return history

    def _load(self, events: list[dict[str, Any]]) -> None:
        for position, event in enumerate(events):
            if event.get("index") != position:
                raise HistoryFormatError(f"event {position} has index {event.get('index')!r}; "
                                         "events must be complete and in index order")
            if event["type"] not in ("invoke", "ok", "fail", "info", "nemesis"):
                raise HistoryFormatError(f"event {position}: unknown type {event['type']!r}")
        self._events = events
        self._pending = {}
        done = {e["op"] for e in events if e["type"] in ("ok", "fail", "info")}
        for e in events:
            if e["type"] == "invoke" and e["index"] not in done:
                self._pending[e["process"]] = e["index"]
        self._ops_cache = None

    @classmethod
    def merge(cls, *histories: History) -> History:
        """One history from several recorded side by side (e.g. a parent and the child process
        it killed), ordered by time and re-indexed. Their process ids must not overlap."""
        owners: dict[int, int] = {}
        for number, history in enumerate(histories):
            for op in history.ops():
                if owners.setdefault(op.process, number) != number:
                    raise ValueError(f"process id {op.process} appears in histories "
                                     f"{owners[op.process]} and {number}; give each recorder "
                                     "its own process ids")
        tagged = [(e["time"], number, e["index"], e)
                  for number, history in enumerate(histories) for e in history.events()]
        tagged.sort(key=lambda t: (t[0], t[1], t[2]))
        remap: dict[tuple[int, int], int] = {}
        merged: list[dict[str, Any]] = []
        for new_index, (_, number, old_index, event) in enumerate(tagged):
            remap[(number, old_index)] = new_index
            event = dict(event)
            event["index"] = new_index
            if "op" in event:
                event["op"] = remap[(number, event["op"])]
            merged.append(event)
        return cls.from_events(merged)


def _key_ref(key: Sequence[str]) -> KeyRef:
    if isinstance(key, str) or len(key) != 2:
        raise ValueError(f"a key ref is (key_type, key_id), got {key!r}")
    return (str(key[0]), str(key[1]))


def _digest_or_none(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise TypeError(f"digests are strings (None = delete/absent), got {type(value).__name__}; "
                    "pass digest(value), never the value itself")


def _rows(rows: Sequence[Sequence[Any]] | None) -> dict[KeyRef, str | None] | None:
    if rows is None:
        return None
    return {(r[0], r[1]): r[2] for r in rows}


def _build_ops(events: Sequence[Mapping[str, Any]]) -> list[Op]:
    completions = {e["op"]: e for e in events if e["type"] in ("ok", "fail", "info")}
    ops = []
    for e in events:
        if e["type"] != "invoke":
            continue
        c = completions.get(e["index"])
        ops.append(Op(
            index=e["index"], process=e["process"], company=e["company"], f=e["f"],
            keys=tuple((k[0], k[1]) for k in e["keys"]), value=_rows(e.get("value")),
            invoke_ns=e["time"], meta=e.get("meta") or {},
            outcome=None if c is None else c["type"],
            complete_ns=None if c is None else c["time"],
            result=None if c is None else _rows(c.get("result")),
            source=None if c is None else c.get("source"),
            error=None if c is None else c.get("error"),
            complete_meta={} if c is None else (c.get("meta") or {}),
            complete_index=None if c is None else c["index"]))
    return ops
