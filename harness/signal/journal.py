"""What a Signal workload leaves behind when its process is killed: the conversation journal.

client-crash runs the conversations in the process it kills (a multi-tenant Baileys service
holds its accounts' conversations in memory, and a kill -9 ends them mid-message). The
workload's `journal` (harness/signal/workload.py) writes here, one JSON line per event, each
handed to the OS before the call returns (like the operation History's sink): a SIGKILL leaves
every event recorded, at most with a torn last line, which the reader drops and reports.

One ordered stream instead of a topology file rewritten beside it: the topology comes first,
each membership change after it, so the roster a successor reads is the one of the last change
recorded, and it cannot disagree with the messages recorded around it.

Read back (`read_journal`) it gives the parent:
- the topology at the kill (companies, jids, 1:1 conversations, groups and their rosters);
- the tally up to the kill (tally.replay: every message, delivery verdict, failed decrypt with
  the keys it involved, retry, re-established session ...);
- the envelopes the server stand-in still held: posted and not yet settled by their recipient,
  in the order they were posted. The WhatsApp server is not in the crashed process: its
  offline queue survives a client crash, so the successor receives them. Their payloads are
  ciphertexts (what the server holds), never keys; the file stays in the scenario's work
  directory, which is removed after the run. An envelope whose recipient was processing it at
  the kill (`receiving` without `settle`) is *in hand*: its decrypt may or may not have
  committed (the reader of the journal tells which by the writes its history shows).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.authstate import codec
from harness.signal.tally import Tally, replay
from harness.signal.topology import Topology


class JournalWriter:
    """Appends events to `path`, one line each, unbuffered (the workload's `journal`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_EXCL, 0o600)

    def __call__(self, event: dict[str, Any]) -> None:
        data = memoryview((json.dumps(event, separators=(",", ":")) + "\n").encode())
        while data:  # every line reaches the OS before the call returns
            data = data[os.write(self._fd, data):]

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


@dataclass
class Posted:
    """One envelope the killed process posted to the server stand-in."""

    seq: int
    message: str  # message id
    recipient: str
    channel: tuple[str, str]  # (sender, recipient)
    payload: dict[str, Any]  # direct: {type, ciphertext}; group: {ciphertext, skdm?}
    receiving_ns: int | None = None  # its recipient started processing it then
    settled: bool = False  # ... and finished (verdict recorded)

    @property
    def receiving(self) -> bool:
        return self.receiving_ns is not None

    @property
    def in_hand(self) -> bool:
        return self.receiving and not self.settled


@dataclass
class Journal:
    topology: Topology
    tally: Tally
    posted: dict[int, Posted] = field(default_factory=dict)
    setup_s: float | None = None
    started_ns: int | None = None  # traffic began
    stopped_ns: int | None = None  # traffic stopped (None: killed while it ran)
    stats: dict[str, Any] = field(default_factory=dict)  # the last `stats` event
    torn_tail: str | None = None

    def unsettled(self) -> list[Posted]:
        """What the server still held at the kill, in the order it was posted."""
        return sorted((p for p in self.posted.values() if not p.settled), key=lambda p: p.seq)


class JournalError(ValueError):
    """A journal that cannot be read back (damage before its last line, no topology)."""


def read_journal(path: Path) -> Journal:
    """The journal at `path` (a last line without its newline was cut by the kill: dropped
    and said in `torn_tail`)."""
    complete, _, tail = path.read_bytes().rpartition(b"\n")
    events: list[dict[str, Any]] = []
    for number, raw in enumerate(complete.split(b"\n") if complete else [], 1):
        try:
            events.append(json.loads(raw))
        except ValueError:
            raise JournalError(f"{path}: line {number} is not JSON") from None
    torn = f"torn last line dropped ({len(tail)} bytes)" if tail.strip() else None
    topology_doc = next((e for e in events if e.get("e") == "topology"), None)
    if topology_doc is None:
        raise JournalError(f"{path}: no topology: the workload never started its setup")
    topology = Topology.from_doc(topology_doc)
    convs = {c.id: c for c in topology.conversations}
    try:
        tally = replay(events)
    except (KeyError, TypeError, ValueError) as exc:
        raise JournalError(f"{path}: not a tally's events: {type(exc).__name__}: {exc}") from None
    journal = Journal(topology, tally, torn_tail=torn)
    for event in events:
        kind = event.get("e")
        if kind == "members":
            convs[str(event["conv"])].members = [str(m) for m in event["members"]]
        elif kind == "post":
            sender, recipient = event["ch"]
            journal.posted[int(event["n"])] = Posted(
                int(event["n"]), str(event["id"]), str(event["to"]), (str(sender),
                                                                       str(recipient)),
                dict(codec.decode(event["p"])))
        elif kind in ("receiving", "settle"):
            posted = journal.posted.get(int(event["n"]))
            if posted is not None:
                if kind == "receiving":
                    posted.receiving_ns = int(event.get("t") or 0)
                else:
                    posted.settled = True
        elif kind == "setup":
            journal.setup_s = float(event["s"])
        elif kind == "start":
            journal.started_ns = int(event["t"])
        elif kind == "stop":
            journal.stopped_ns = int(event["t"])
        elif kind == "stats":
            journal.stats = {k: v for k, v in event.items() if k != "e"}
    return journal
