"""When did each acknowledged write become durable, as an outside observer saw it?

Input: the operation history and the observer's reads (`Observations`). A read of key k that
returned digest d names the write that produced d (every value is unique); absent names the
deletes of k. A write w is *confirmed durable* by the first read, ending after w was invoked,
that returned w's value or the value of a write that does not strictly precede w (one that
completed only after w was invoked, or never completed): a later value means w's turn came and
went. Its time is that read's end: the value was in PostgreSQL by then (resolution: the
observer's interval).

Also derived here, each from what was seen, never from what the store says about itself:
- *acknowledged before durable*: the first read that started after w's acknowledgement still
  showed an older value (the store answered from memory or a journal);
- ``late-write``: an indeterminate write's value appeared after a newer acknowledged value had
  been seen durable on that key (an old session overwriting a newer one: fatal for Baileys);
- ``torn``: a read that saw part of a multi-key write's keys with its values and part without.

Cost: per key, writes and reads are each sorted once; a write's confirmation scans the reads
from its invoke until one qualifies (a few, unless an outage kept its value out of PostgreSQL).
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.metrics.history import KeyRef, Op
from harness.metrics.observations import Observations, Seen, StateKey

NEVER = 1 << 62  # the completion time of a write that may still take effect
NO_WRITE = -1    # a read's value that no write of the key produced


@dataclasses.dataclass(frozen=True, slots=True)
class WriteDurability:
    """What the observer saw of one acknowledged write (op index `op`)."""

    op: int
    company: str
    durable_ns: int | None          # confirmed durable by then (None: never seen)
    acked_before_durable_ns: int | None  # start of a read after the ack that did not show it


@dataclasses.dataclass(frozen=True)
class LateWrite:
    company: str
    key: KeyRef
    late_op: int          # the indeterminate write whose value came back
    newer_op: int         # the acknowledged write seen durable before it
    newer_seen_ns: int
    late_seen_ns: int
    final: bool           # seen in the final read


@dataclasses.dataclass(frozen=True)
class TornRead:
    group: str
    company: str
    op: int | None
    at_ns: int
    applied: int
    total: int


class _KeyIndex:
    """One key's writes (by digest) and reads, with the producer's completion per read."""

    def __init__(self, writes: Sequence[Op], key: KeyRef, seen: Sequence[Seen]) -> None:
        self.by_digest: dict[str, Op] = {}
        self.deletes: list[Op] = []
        for op in writes:
            if op.outcome == "fail":
                continue
            value = (op.value or {}).get(key)
            if value is None:
                self.deletes.append(op)
            else:
                self.by_digest[value] = op
        self.deletes.sort(key=lambda op: op.invoke_ns)
        self.delete_invokes = [op.invoke_ns for op in self.deletes]
        self.seen = list(seen)
        self.starts = [s.start_ns for s in self.seen]  # reads are recorded in time order
        self.producer_complete = [self._producer_complete(s) for s in self.seen]

    def _producer_complete(self, s: Seen) -> int:
        """Completion time of the write that explains the read (NEVER if it may still take
        effect; NO_WRITE if none does). Absent: the latest-completing delete invoked before
        the read ended."""
        if s.digest is not None:
            op = self.by_digest.get(s.digest)
            if op is None or op.invoke_ns >= s.end_ns:
                return NO_WRITE
            return _complete(op)
        n = bisect_left(self.delete_invokes, s.end_ns)
        return max((_complete(op) for op in self.deletes[:n]), default=NO_WRITE)

    def first_confirming(self, w: Op, ends_from: int) -> int | None:
        """Index of the first read (ending at or after w's invoke) that confirms w."""
        for i in range(ends_from, len(self.seen)):
            if self.producer_complete[i] >= w.invoke_ns:
                return i
        return None


def _complete(op: Op) -> int:
    if op.outcome in ("ok", "fail") and op.complete_ns is not None:
        return op.complete_ns
    return NEVER


def _writes_by_key(ops: Iterable[Op]) -> dict[StateKey, list[Op]]:
    grouped: dict[StateKey, list[Op]] = {}
    for op in ops:
        if op.is_write:
            for key in op.value or {}:
                grouped.setdefault((op.company, key), []).append(op)
    return grouped


class Durability:
    """Per acknowledged write: when it was confirmed durable; plus late writes and torn reads."""

    def __init__(self, ops: Sequence[Op], observations: Observations) -> None:
        self.observations = observations
        self.writes: dict[int, WriteDurability] = {}
        self.late_writes: list[LateWrite] = []
        self._indexes: dict[StateKey, _KeyIndex] = {}
        per_key: dict[int, list[tuple[int | None, int | None]]] = {}
        for key, writes in _writes_by_key(ops).items():
            index = _KeyIndex(writes, key[1], observations.seen(key))
            self._indexes[key] = index
            ends = [s.end_ns for s in index.seen]
            for w in writes:
                if w.outcome != "ok" or w.complete_ns is None:
                    continue
                at = index.first_confirming(w, bisect_left(ends, w.invoke_ns))
                durable = None if at is None else index.seen[at].end_ns
                early = self._acked_before_durable(index, w)
                per_key.setdefault(w.index, []).append((durable, early))
            self._find_late_writes(key, index)
        companies = {op.index: op.company for op in ops}
        for op_index, rows in per_key.items():
            durable_times = [d for d, _ in rows]
            durable = None if any(d is None for d in durable_times) else max(
                d for d in durable_times if d is not None)
            early = [e for _, e in rows if e is not None]
            self.writes[op_index] = WriteDurability(op_index, companies[op_index], durable,
                                                    min(early) if early else None)

    @staticmethod
    def _acked_before_durable(index: _KeyIndex, w: Op) -> int | None:
        """Start of the first read begun after w's ack, if that read did not confirm w."""
        assert w.complete_ns is not None
        i = bisect_right(index.starts, w.complete_ns)
        if i == len(index.seen) or index.producer_complete[i] >= w.invoke_ns:
            return None
        return index.seen[i].start_ns

    def _find_late_writes(self, key: StateKey, index: _KeyIndex) -> None:
        newest: tuple[int, Op] | None = None  # (seen at, acked write) with the latest invoke
        final_at = self.observations.final_at_ns
        for s in index.seen:
            if s.digest is None:
                continue
            op = index.by_digest.get(s.digest)
            if op is None:
                continue
            if op.outcome == "ok":
                if newest is None or op.invoke_ns > newest[1].invoke_ns:
                    newest = (s.end_ns, op)
            elif (newest is not None and op.invoke_ns < newest[1].invoke_ns
                  and s.start_ns > newest[0]):
                self.late_writes.append(LateWrite(
                    key[0], key[1], op.index, newest[1].index, newest[0], s.end_ns,
                    final=s.end_ns == final_at))
                newest = None  # one example per overwrite

    # -- queries -----------------------------------------------------------------------------
    def durable_ns(self, op_index: int) -> int | None:
        found = self.writes.get(op_index)
        return None if found is None else found.durable_ns

    def acked_before_durable(self, op_index: int) -> int | None:
        found = self.writes.get(op_index)
        return None if found is None else found.acked_before_durable_ns

    def torn_reads(self) -> list[TornRead]:
        return [TornRead(g.name, g.company, g.op, s.end_ns, s.applied, s.total)
                for g in self.observations.groups for s in g.torn_samples()]

    def summary(self) -> dict[str, Any]:
        acked = list(self.writes.values())
        return {"acked_writes_seen": len(acked),
                "never_confirmed": sum(1 for w in acked if w.durable_ns is None),
                "acked_before_durable": sum(1 for w in acked
                                            if w.acked_before_durable_ns is not None),
                "late_writes": len(self.late_writes), "torn_reads": len(self.torn_reads())}


def group_applied(values: Mapping[KeyRef, str | None], company: str,
                  read: Mapping[StateKey, str | None]) -> int:
    """How many keys of a group held the group write's value in one read."""
    return sum(1 for key, want in values.items() if read.get((company, key)) == want)
