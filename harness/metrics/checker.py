"""Checker: did the store keep every acknowledged write, and did every read tell the truth?

Input: the operation history and the *final* state read directly from PostgreSQL after the
fault healed and the target settled. Per (company, key ref), writes are ordered by real time
only: w1 *precedes* w2 when w1 completed before w2 was invoked. An acknowledged (ok) write is
*superseded* once an ok write it precedes exists. Writes that ended ``info`` (or never
completed) may have taken effect at any moment after their invoke, so they are never
superseded and never precede anything; failed writes definitely did not take effect.
Concurrent writes (two store instances, overlapping calls) all stay allowed: no order between
them is assumed.

Anomalies (each example names op indices, processes, key refs and *digests*, never values):

- ``lost``: the final state is not explained by any non-superseded write while an acked
  write exists (final = an older write's value, or absent though the latest acked write is an
  upsert). Every acked write left unexplained counts in ``lost_writes``.
- ``resurrected``: the latest acked writes are deletes, yet the final state holds an older
  write's value (an undone delete: a consumed pre-key that comes back).
- ``stale-read``: an ok read returned a value (or absent) older than the latest write acked
  before the read was invoked. Allowed: writes not superseded by a write acked before the
  read's invoke and invoked before the read completed (so concurrent ones too, info ones
  included); absent only if one of those is a delete or nothing was acked before the read.
- ``unexpected``: a read or the final state holds a digest no ok/info write of that key wrote
  before (a failed write's value included: Elle's "aborted read"; a write invoked only after
  the read completed too).
- ``creds-reset``: fresh creds (``{"fresh": True}`` meta on the read's completion, or in
  ``final_meta``) where paired creds had been acknowledged before; reported instead of
  ``unexpected``.
- ``torn``: a multi-key write that ended info or fail is found partly applied and partly not
  in the final state. Only keys the write was the last to touch are judged (every other write
  of the key completed before it was invoked), else a later write could explain either state;
  a delete is judged only when the key certainly held a value before. With an observer's
  reads (``durability``), also any read that saw part of a watched multi-key write's keys
  applied and part not, acknowledged or not (a journal's non-atomic replay included).
- ``late-write`` (observer): an indeterminate write's value appeared after a newer
  acknowledged value of the key had been seen durable: an old session over a newer one.
- ``hang``: a call that ran longer than the harness's deadline plus a margin
  (``hang_after_ns``), whatever the store's own deadline says.
- ``crash``, ``setup-failed``, ``cross-tenant``: found by the suites (the target's process
  died; it failed on a healthy database before any fault; an operation on one company changed
  another's state) and handed in as ``extra`` anomalies, so one result names them all.

An ``unexpected`` value whose un-decoded bytes forms (a ``{"type": "Buffer"}`` object, a base64
text, a list of numbers) decode to an allowed write is named as a wrong type, with the form.

``info`` writes are counted as indeterminate, never as lost or safe; those whose value turned
up in a read or the final state are counted as ``recovered_writes``.

Cost: one pass to index writes per key (sorted arrays, prefix maxima), then O(log n) per read
key and per final key. 100k ops check in about a second.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.metrics.durability import Durability
from harness.metrics.history import CREDS, History, KeyRef, Op

LOST = "lost"
RESURRECTED = "resurrected"
STALE_READ = "stale-read"
UNEXPECTED = "unexpected"
CREDS_RESET = "creds-reset"
TORN = "torn"
LATE_WRITE = "late-write"
HANG = "hang"
CRASH = "crash"
SETUP_FAILED = "setup-failed"
CROSS_TENANT = "cross-tenant"
ANOMALY_NAMES = (LOST, RESURRECTED, STALE_READ, UNEXPECTED, CREDS_RESET, TORN, LATE_WRITE,
                 HANG, CRASH, SETUP_FAILED, CROSS_TENANT)

_NEVER = 1 << 62          # completion time of a write that may still take effect
_MAX_LISTED = 10          # digests / ops / keys listed in one example

FinalState = Mapping[tuple[str, KeyRef], "str | None"]


@dataclasses.dataclass(frozen=True)
class Anomaly:
    """One example. ``op`` is the op that shows it (the read; for final-state anomalies the
    acknowledged write that is missing or undone), None when no single op does."""

    name: str
    company: str
    key: KeyRef | None
    where: str                                  # "read" | "final" | "observed" | "call" | "target"
    op: int | None = None
    process: int | None = None
    expected: tuple[str | None, ...] = ()       # digests that would have been fine; None = absent
    expected_ops: tuple[int, ...] = ()          # the writes those digests come from
    found: str | None = None                    # digest found; None = absent
    found_op: int | None = None                 # the write that produced `found`, if any
    note: str = ""
    detail: Mapping[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["key"] = list(self.key) if self.key else None
        data["expected"] = list(self.expected)
        data["expected_ops"] = list(self.expected_ops)
        data["detail"] = dict(self.detail)
        return data


@dataclasses.dataclass
class CheckResult:
    anomalies: dict[str, list[Anomaly]]     # examples per name (at most max_examples each)
    anomaly_counts: dict[str, int]          # exact counts per name
    acked_writes: int = 0
    failed_writes: int = 0
    indeterminate_writes: int = 0           # info or never completed: neither lost nor safe
    recovered_writes: int = 0               # indeterminate writes seen applied
    lost_writes: int = 0                    # acked writes the final state does not explain
    lost_keys: int = 0
    reads: int = 0                          # ok reads checked
    failed_reads: int = 0
    indeterminate_reads: int = 0
    stale_reads: int = 0                    # ok reads with at least one stale key
    keys_checked: int = 0                   # (company, key) pairs judged in the final state

    @property
    def valid(self) -> bool:
        return not any(self.anomaly_counts.values())

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("anomalies", "anomaly_counts")}

    def summary(self, examples: int = 5) -> dict[str, Any]:
        """Small, JSON-ready: validity, counts, anomaly counts and the first examples."""
        return {"valid": self.valid, **self.counts(),
                "anomalies": {n: c for n, c in self.anomaly_counts.items() if c},
                "examples": {n: [a.to_dict() for a in found[:examples]]
                             for n, found in self.anomalies.items() if found}}


@dataclasses.dataclass(slots=True)
class _Write:
    op: Op
    digest: str | None
    invoke: int
    complete: int            # _NEVER for info / pending
    acked: bool
    failed: bool
    paired: bool             # a creds write of paired (not fresh) creds


class _KeyWrites:
    """The writes of one (company, key), indexed for 'what was allowed at time t' queries."""

    def __init__(self, writes: list[_Write]) -> None:
        self.all_completes = sorted(w.complete for w in writes)
        live = [w for w in writes if not w.failed]
        self.failed_by_digest: dict[str, list[_Write]] = {}
        for w in writes:
            if w.failed and w.digest is not None:
                self.failed_by_digest.setdefault(w.digest, []).append(w)
        self.by_digest: dict[str, list[_Write]] = {}
        for w in live:
            if w.digest is not None:
                self.by_digest.setdefault(w.digest, []).append(w)
        self.acked = sorted((w for w in live if w.acked), key=lambda w: w.complete)
        self.acked_complete = [w.complete for w in self.acked]
        self.prefix_max_invoke: list[int] = []
        top = -1
        for w in self.acked:
            top = max(top, w.invoke)
            self.prefix_max_invoke.append(top)
        deletes = [w for w in self.acked if w.digest is None]   # already sorted by complete
        self.delete_complete = [w.complete for w in deletes]
        self.delete_suffix_min_invoke = [0] * len(deletes)
        low = _NEVER
        for i in range(len(deletes) - 1, -1, -1):
            low = min(low, deletes[i].invoke)
            self.delete_suffix_min_invoke[i] = low
        self.unsure = sorted((w for w in live if not w.acked), key=lambda w: -w.invoke)
        self.unsure_delete_min_invoke = min((w.invoke for w in self.unsure if w.digest is None),
                                            default=_NEVER)
        paired = [w.complete for w in self.acked if w.paired]
        self.first_paired_ack = min(paired) if paired else None

    def horizon(self, t: int) -> int | None:
        """Latest invoke among writes acked before t: ok writes completed before it are
        superseded as seen from t. None when nothing was acked before t."""
        i = bisect_left(self.acked_complete, t)
        return self.prefix_max_invoke[i - 1] if i else None

    @staticmethod
    def allowed(w: _Write, horizon: int | None, until: int) -> bool:
        return w.invoke < until and (not w.acked or horizon is None or w.complete >= horizon)

    def absent_allowed(self, horizon: int | None, until: int) -> bool:
        if horizon is None or self.unsure_delete_min_invoke < until:
            return True
        i = bisect_left(self.delete_complete, horizon)
        return i < len(self.delete_complete) and self.delete_suffix_min_invoke[i] < until

    def current_acked(self, horizon: int | None, until: int) -> list[_Write]:
        start = 0 if horizon is None else bisect_left(self.acked_complete, horizon)
        return [w for w in self.acked[start:] if w.invoke < until]

    def allowed_examples(self, horizon: int | None, until: int) -> list[_Write]:
        found = self.current_acked(horizon, until)[-_MAX_LISTED:]
        for w in self.unsure:
            if len(found) >= _MAX_LISTED:
                break
            if w.invoke < until:
                found.append(w)
        return found

    def touched_since(self, t: int) -> int:
        """How many writes of this key (any outcome) completed at/after t or may still."""
        return len(self.all_completes) - bisect_left(self.all_completes, t)


class _Checker:
    def __init__(self, ops: Sequence[Op], final: FinalState,
                 final_meta: Mapping[tuple[str, KeyRef], Mapping[str, Any]],
                 max_examples: int, durability: Durability | None = None,
                 hang_after_ns: int | None = None, extra: Sequence[Anomaly] = (),
                 unreadable: Iterable[str] = ()) -> None:
        self.ops = ops
        self.durability = durability
        self.hang_after_ns = hang_after_ns
        self.extra = list(extra)
        self.unreadable = frozenset(unreadable)
        self._ops_by_index: dict[int, Op] | None = None
        self.final = final
        self.final_meta = final_meta
        self.max_examples = max_examples
        self.result = CheckResult(anomalies={n: [] for n in ANOMALY_NAMES},
                                  anomaly_counts=dict.fromkeys(ANOMALY_NAMES, 0))
        self.recovered: set[int] = set()
        self.lost_ops: set[int] = set()
        self.keys: dict[tuple[str, KeyRef], _KeyWrites] = {}

    # -- reporting -------------------------------------------------------------------------

    def wants_example(self, name: str) -> bool:
        return len(self.result.anomalies[name]) < self.max_examples

    def report(self, anomaly: Anomaly) -> None:
        self.result.anomaly_counts[anomaly.name] += 1
        if self.wants_example(anomaly.name):
            self.result.anomalies[anomaly.name].append(anomaly)

    # -- passes ----------------------------------------------------------------------------

    def run(self) -> CheckResult:
        self.index_writes()
        for op in self.ops:
            if op.is_read:
                self.check_read(op)
        self.check_final()
        self.check_torn_writes()
        if self.durability is not None:
            self.check_observed(self.durability)
        if self.hang_after_ns is not None:
            self.check_hangs(self.hang_after_ns)
        for anomaly in self.extra:
            self.report(anomaly)
        r = self.result
        r.recovered_writes = len(self.recovered)
        r.lost_writes = len(self.lost_ops)
        return r

    def index_writes(self) -> None:
        grouped: dict[tuple[str, KeyRef], list[_Write]] = {}
        r = self.result
        for op in self.ops:
            if not op.is_write:
                continue
            if op.outcome == "ok":
                r.acked_writes += 1
            elif op.outcome == "fail":
                r.failed_writes += 1
            else:
                r.indeterminate_writes += 1
            acked = op.outcome == "ok"
            failed = op.outcome == "fail"
            complete = op.complete_ns if (acked or failed) else _NEVER
            assert complete is not None
            for key, value_digest in (op.value or {}).items():
                grouped.setdefault((op.company, key), []).append(_Write(
                    op, value_digest, op.invoke_ns, complete, acked, failed,
                    paired=key == CREDS and not op.meta.get("fresh")))
        self.keys = {ck: _KeyWrites(ws) for ck, ws in grouped.items()}

    def check_read(self, op: Op) -> None:
        r = self.result
        if op.outcome == "fail":
            r.failed_reads += 1
            return
        if op.outcome != "ok":
            r.indeterminate_reads += 1
            return
        r.reads += 1
        if not op.result:
            return
        assert op.complete_ns is not None
        start, end = op.invoke_ns, op.complete_ns
        stale = False
        for key, found in op.result.items():
            index = self.keys.get((op.company, key))
            if key == CREDS and op.complete_meta.get("fresh"):
                self.check_fresh_creds_read(op, index)
                continue
            if index is None:
                if found is not None:
                    self.report(Anomaly(UNEXPECTED, op.company, key, "read", op.index,
                                        op.process, expected=(None,), found=found,
                                        note="never written"))
                continue
            horizon = index.horizon(start)
            if found is None:
                if index.absent_allowed(horizon, end):
                    continue
                stale = True
                self.report(self.read_anomaly(STALE_READ, op, key, index, horizon, None, None,
                                              "absent, though a value was acknowledged before "
                                              "the read began"))
                continue
            writes = index.by_digest.get(found, ())
            match = next((w for w in writes if index.allowed(w, horizon, end)), None)
            if match is not None:
                if not match.acked:
                    self.recovered.add(match.op.index)
                continue
            earlier = next((w for w in writes if w.invoke < end), None)
            if earlier is not None:
                stale = True
                self.report(self.read_anomaly(STALE_READ, op, key, index, horizon, found,
                                              earlier.op.index,
                                              "value of a write superseded before the read "
                                              "began"))
            else:
                found_op, note = self.unexpected_origin(index, found, writes)
                wrong_form = self.wrong_form(op, key, index, horizon, end)
                if wrong_form is not None:
                    found_op, note = wrong_form
                self.report(self.read_anomaly(UNEXPECTED, op, key, index, horizon, found,
                                              found_op, note))
        if stale:
            r.stale_reads += 1

    def check_fresh_creds_read(self, op: Op, index: _KeyWrites | None) -> None:
        if index is None or index.first_paired_ack is None:
            return
        if index.first_paired_ack < op.invoke_ns:
            horizon = index.horizon(op.invoke_ns)
            assert op.complete_ns is not None
            self.report(self.read_anomaly(CREDS_RESET, op, CREDS, index, horizon, None, None,
                                          "fresh creds returned after paired creds were "
                                          "acknowledged"))

    def read_anomaly(self, name: str, op: Op, key: KeyRef, index: _KeyWrites,
                     horizon: int | None, found: str | None, found_op: int | None,
                     note: str) -> Anomaly:
        if not self.wants_example(name):
            return Anomaly(name, op.company, key, "read", op.index, op.process)
        assert op.complete_ns is not None
        allowed = index.allowed_examples(horizon, op.complete_ns)
        expected = [w.digest for w in allowed]
        if index.absent_allowed(horizon, op.complete_ns) and None not in expected:
            expected.append(None)
        return Anomaly(name, op.company, key, "read", op.index, op.process,
                       expected=tuple(expected), expected_ops=tuple(w.op.index for w in allowed),
                       found=found, found_op=found_op, note=note)

    @staticmethod
    def wrong_form(op: Op, key: KeyRef, index: _KeyWrites, horizon: int | None,
                   until: int) -> tuple[int, str] | None:
        """(write, note) when the read's value is an allowed write's bytes in another form."""
        for row in op.complete_meta.get("forms") or ():
            key_type, key_id, loose, forms = row
            if (key_type, key_id) != key:
                continue
            match = next((w for w in index.by_digest.get(loose, ())
                          if index.allowed(w, horizon, until)), None)
            if match is not None:
                return match.op.index, (f"wrong type: the value of op {match.op.index} with its "
                                        f"bytes as {', '.join(forms)}, not bytes")
        return None

    @staticmethod
    def unexpected_origin(index: _KeyWrites | None, found: str,
                          later: Iterable[_Write]) -> tuple[int | None, str]:
        later = list(later)
        if later:
            return later[0].op.index, "written only after the read completed"
        failed = index.failed_by_digest.get(found) if index else None
        if failed:
            return failed[0].op.index, "value of a failed write (aborted read)"
        return None, "never written"

    def check_final(self) -> None:
        companies_keys = set(self.keys)
        companies_keys.update(ck for ck, v in self.final.items() if v is not None)
        for (company, key) in sorted(companies_keys):
            if company in self.unreadable:
                continue  # its final state is unknown, not absent
            self.result.keys_checked += 1
            self.check_final_key(company, key, self.keys.get((company, key)),
                                 self.final.get((company, key)))

    def check_final_key(self, company: str, key: KeyRef, index: _KeyWrites | None,
                        found: str | None) -> None:
        meta = self.final_meta.get((company, key)) or {}
        if index is None:
            if found is not None and not (key == CREDS and meta.get("fresh")):
                self.report(Anomaly(UNEXPECTED, company, key, "final", expected=(None,),
                                    found=found, note="never written"))
            return
        horizon = index.horizon(_NEVER)
        current = index.current_acked(horizon, _NEVER)
        if key == CREDS and meta.get("fresh"):
            if index.first_paired_ack is not None:
                last = current[-1] if current else index.acked[-1]
                self.report(Anomaly(CREDS_RESET, company, key, "final", last.op.index,
                                    last.op.process, expected=self.digests(current),
                                    expected_ops=self.op_ids(current),
                                    note="PostgreSQL holds fresh creds after paired creds "
                                         "were acknowledged"))
                self.report_lost(company, key, current, None, None, "fresh creds")
            return
        writes = index.by_digest.get(found, ()) if found is not None else ()
        if found is None:
            if index.absent_allowed(horizon, _NEVER):
                return
        else:
            match = next((w for w in writes if index.allowed(w, horizon, _NEVER)), None)
            if match is not None:
                if not match.acked:
                    self.recovered.add(match.op.index)
                return
        found_op = writes[0].op.index if writes else None
        if found is not None and not writes:
            found_op, note = self.unexpected_origin(index, found, ())
            self.report(Anomaly(UNEXPECTED, company, key, "final", expected=self.digests(current),
                                expected_ops=self.op_ids(current), found=found,
                                found_op=found_op, note=note))
        elif found is not None and current and all(w.digest is None for w in current):
            last = current[-1]
            self.report(Anomaly(RESURRECTED, company, key, "final", last.op.index,
                                last.op.process, expected=(None,),
                                expected_ops=self.op_ids(current), found=found,
                                found_op=found_op,
                                note="an acknowledged delete was undone by an older value"))
            return
        what = ("absent" if found is None else "an older write's value" if writes
                else "a value no acknowledged write made")
        self.report_lost(company, key, current, found, found_op, what)

    def report_lost(self, company: str, key: KeyRef, current: list[_Write], found: str | None,
                    found_op: int | None, what: str) -> None:
        if not current:
            return
        self.result.lost_keys += 1
        self.lost_ops.update(w.op.index for w in current)
        last = current[-1]
        self.report(Anomaly(LOST, company, key, "final", last.op.index, last.op.process,
                            expected=self.digests(current), expected_ops=self.op_ids(current),
                            found=found, found_op=found_op,
                            note=f"{len(current)} acknowledged write(s) missing: final is {what}"))

    def check_torn_writes(self) -> None:
        for op in self.ops:
            if not op.is_write or op.outcome == "ok" or not op.value or len(op.value) < 2:
                continue
            applied: list[KeyRef] = []
            missing: list[KeyRef] = []
            for key, value_digest in op.value.items():
                index = self.keys[(op.company, key)]
                if index.touched_since(op.invoke_ns) != 1:
                    continue  # another write may explain whatever the key holds
                found = self.final.get((op.company, key))
                if value_digest is not None:
                    (applied if found == value_digest else missing).append(key)
                elif self.held_value_before(index):
                    (applied if found is None else missing).append(key)
            if applied and missing:
                self.report(Anomaly(
                    TORN, op.company, None, "final", op.index, op.process,
                    note=f"{op.outcome or 'pending'} write of {len(op.value)} keys: "
                         f"{len(applied)} applied, {len(missing)} not",
                    detail={"applied": [list(k) for k in applied[:_MAX_LISTED]],
                            "not_applied": [list(k) for k in missing[:_MAX_LISTED]],
                            "applied_count": len(applied), "not_applied_count": len(missing)}))

    def check_observed(self, durability: Durability) -> None:
        """Late writes and torn reads, as the observer saw them."""
        for late in durability.late_writes:
            late_op = self.ops_by_index().get(late.late_op)
            self.report(Anomaly(
                LATE_WRITE, late.company, late.key, "final" if late.final else "observed",
                late.late_op, None if late_op is None else late_op.process,
                expected_ops=(late.newer_op,), found_op=late.late_op,
                note=f"the value of indeterminate op {late.late_op} appeared "
                     f"{(late.late_seen_ns - late.newer_seen_ns) / 1e9:.3f} s after op "
                     f"{late.newer_op}'s newer value was seen durable"))
        torn_groups: dict[str, list[Any]] = {}
        for torn in durability.torn_reads():
            torn_groups.setdefault(torn.group, []).append(torn)
        for group, reads in torn_groups.items():
            first = reads[0]
            self.report(Anomaly(
                TORN, first.company, None, "observed", first.op, None,
                note=f"{len(reads)} read(s) of {group} saw part of it: first "
                     f"{first.applied} of {first.total} keys",
                detail={"group": group, "reads": len(reads),
                        "applied": sorted({r.applied for r in reads})[:_MAX_LISTED],
                        "total": first.total}))

    def check_hangs(self, after_ns: int) -> None:
        for op in self.ops:
            if op.complete_ns is None or op.complete_ns - op.invoke_ns <= after_ns:
                continue
            self.report(Anomaly(
                HANG, op.company, op.keys[0] if op.keys else None, "call", op.index,
                op.process,
                note=f"{op.f} ran {(op.complete_ns - op.invoke_ns) / 1e9:.2f} s (> "
                     f"{after_ns / 1e9:g} s: the harness's deadline plus its margin); "
                     f"{op.outcome}: {op.error or 'answered'}"))

    def ops_by_index(self) -> dict[int, Op]:
        if self._ops_by_index is None:
            self._ops_by_index = {op.index: op for op in self.ops}
        return self._ops_by_index

    @staticmethod
    def held_value_before(index: _KeyWrites) -> bool:
        """Only called when every other write of the key had completed: did the key certainly
        hold a value (so a delete can be told apart from 'was never there')?"""
        current = index.current_acked(index.horizon(_NEVER), _NEVER)
        return bool(current) and all(w.digest is not None for w in current)

    @staticmethod
    def digests(writes: Sequence[_Write]) -> tuple[str | None, ...]:
        return tuple(w.digest for w in writes[-_MAX_LISTED:])

    @staticmethod
    def op_ids(writes: Sequence[_Write]) -> tuple[int, ...]:
        return tuple(w.op.index for w in writes[-_MAX_LISTED:])


def check(history: History | Sequence[Op], final: FinalState, *,
          final_meta: Mapping[tuple[str, KeyRef], Mapping[str, Any]] | None = None,
          max_examples: int = 1000, durability: Durability | None = None,
          hang_after_s: float | None = None, extra: Sequence[Anomaly] = (),
          unreadable: Iterable[str] = ()) -> CheckResult:
    """Judge a history against the final state read directly from PostgreSQL.

    ``final`` maps (company, key ref) to the digest PostgreSQL holds (None = absent). Every key
    the history wrote must be present or is taken as absent; keys never written and absent may
    be omitted. ``final_meta`` carries per-key facts about that read, e.g.
    ``{(company, CREDS): {"fresh": True}}`` when PostgreSQL holds freshly generated creds.
    Examples are kept up to ``max_examples`` per anomaly name; the counts are exact.
    ``durability``: the observer's reads, analysed (late writes, torn reads); ``hang_after_s``:
    a call longer than this is a ``hang``; ``extra``: anomalies the suites found themselves;
    ``unreadable``: companies whose final state could not be read (not judged there).
    """
    ops = history.ops() if isinstance(history, History) else list(history)
    hang_ns = None if hang_after_s is None else round(hang_after_s * 1e9)
    return _Checker(ops, final, final_meta or {}, max_examples, durability, hang_ns,
                    extra, unreadable).run()
