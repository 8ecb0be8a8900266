"""MTTD and RTO per company and fault window, observed from outside the store.

Nothing here reads what the store says about itself (no `last_source`, no breaker, no
deadline of its own): detection comes from the callers' side of the history, recovery from the
observer's reads of durable state (`harness.metrics.durability`).

- MTTD: the first of, among the company's calls in flight at the injection or invoked before
  the next window (or the end): a call that completed ``fail`` / ``info``; a call slower than
  the harness's deadline (detected the moment it crossed it; a call that never answered too);
  a call answered ``ok`` that cannot have come from PostgreSQL, because it was invoked after
  the fault cut the database path (``cut_from_ns``: set for faults that cut it, once the
  injection took effect) and completed before the path was back; a write acknowledged before
  it was durable (the observer's evidence) by a store that wrote through before the fault
  (it switched to its journal). Minus the injection time.
  A company none of whose calls showed anything yet which recovered is *masked* (an inline
  retry hid a terminate-backends): reported, not a miss. Never detected and never recovered is
  a miss (None).
- RTO: from the clear until both every write the company had acknowledged before the clear (or
  invoked before it and acknowledged later) is confirmed durable (its value, or a later one,
  read back by the observer) and the first write it invoked after the clear and had
  acknowledged is; minus the clear. None: not recovered before the next
  window (or the end).
- time to first success: the company's first call invoked after the clear that answered ok
  (from wherever it was served), minus the clear.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence

from harness.metrics.durability import Durability
from harness.metrics.history import History, Op
from harness.metrics.recovery import (
    CompanyRecovery,
    RecoveryResult,
    WindowRecovery,
    by_company,
    seconds_between,
)
from harness.metrics.windows import NS, Window, WindowLike, episodes

_END = 1 << 62


def writes_through_before(ops: Sequence[Op], durability: Durability, injected: int) -> bool:
    """Whether every write the company had acknowledged before `injected` was durable when
    acknowledged (no read after its ack still showed an older value): the store writes
    through in health, so acknowledging before durable later means it changed mode."""
    return not any(op.is_write and op.outcome == "ok" and op.complete_ns is not None
                   and op.complete_ns < injected
                   and durability.acked_before_durable(op.index) is not None for op in ops)


def detection(ops: Sequence[Op], window: Window, bound: int, *, deadline_ns: int,
              cut_from_ns: int | None, durability: Durability | None = None,
              writes_through: bool = False) -> tuple[int | None, str | None]:
    """(time, how) the company's callers first noticed the fault, or (None, None)."""
    best: int | None = None
    how: str | None = None
    injected = window.injected_ns
    cleared = window.cleared_ns if window.cleared_ns is not None else bound
    for op in ops:
        if op.invoke_ns >= bound:
            break
        done = op.complete_ns
        if done is not None and done < injected:
            continue  # over before the fault began
        candidates: list[tuple[int, str]] = []
        if op.outcome in ("fail", "info") and done is not None:
            candidates.append((done, "error"))
        slow_at = op.invoke_ns + deadline_ns
        if (done is None or done > slow_at) and injected <= slow_at < bound:
            candidates.append((slow_at, "slow"))  # (slow before the fault: not its doing)
        if (op.outcome == "ok" and cut_from_ns is not None and done is not None
                and op.invoke_ns >= cut_from_ns and done <= cleared):
            candidates.append((done, "no-database"))
        if (writes_through and durability is not None and op.is_write and op.outcome == "ok"
                and done is not None and injected <= done <= cleared
                and durability.acked_before_durable(op.index) is not None):
            candidates.append((done, "acked-before-durable"))
        for at, kind in candidates:
            if best is None or at < best:
                best, how = at, kind
    return best, how


def recovered_at(ops: Sequence[Op], durability: Durability, cleared: int,
                 bound: int) -> int | None:
    """When every write acknowledged before `cleared` and the first one acknowledged after it
    were confirmed durable (None: not before `bound`)."""
    latest = cleared
    first_after: Op | None = None
    for op in ops:
        if not op.is_write or op.outcome != "ok" or op.complete_ns is None:
            continue
        if op.complete_ns < cleared or (op.invoke_ns < cleared and op.complete_ns < bound):
            # acknowledged before the clear, or invoked during the fault and acknowledged after
            durable = durability.durable_ns(op.index)
            if durable is None:
                return None
            latest = max(latest, durable)
        elif op.invoke_ns >= cleared and op.complete_ns < bound and first_after is None:
            first_after = op
    if first_after is None:
        return None
    durable = durability.durable_ns(first_after.index)
    if durable is None or durable >= bound:
        return None
    return max(latest, durable)


def observed_recovery(history: History | Sequence[Op], windows: Iterable[WindowLike],
                      durability: Durability, *, deadline_s: float,
                      cut_from_ns: Mapping[int, int] | None = None,
                      companies: Iterable[str] | None = None) -> RecoveryResult:
    """Observed MTTD / time to first success / RTO per company and window (see the module
    docstring). ``cut_from_ns``: per window (episode) index, the moment from which the fault
    had cut the database path (faults that do; absent for the others)."""
    ops = history.ops() if isinstance(history, History) else list(history)
    eps = episodes(windows)
    grouped = by_company(ops)
    names = sorted(set(companies) if companies is not None else grouped)
    bounds = [eps[i + 1].injected_ns if i + 1 < len(eps) else _END for i in range(len(eps))]
    deadline_ns = round(deadline_s * NS)
    cuts = dict(cut_from_ns or {})
    per_window = [WindowRecovery(i, w.kind, w.injected_ns, w.cleared_ns,
                                 None if w.cleared_ns is None
                                 else (w.cleared_ns - w.injected_ns) / NS,
                                 None, None, None) for i, w in enumerate(eps)]
    per_company: list[CompanyRecovery] = []
    for company in names:
        company_ops = grouped.get(company, [])
        invokes = [op.invoke_ns for op in company_ops]
        for i, w in enumerate(eps):
            bound = bounds[i]
            # calls still running at the injection count: start from the earliest that could be
            start = bisect_left(invokes, w.injected_ns - 10 * deadline_ns)
            detected, how = detection(
                company_ops[start:], w, bound, deadline_ns=deadline_ns, cut_from_ns=cuts.get(i),
                durability=durability,
                writes_through=writes_through_before(company_ops, durability, w.injected_ns))
            rto_at = first_ok = None
            if w.cleared_ns is not None:
                rto_at = recovered_at(company_ops[:bisect_left(invokes, bound)], durability,
                                      w.cleared_ns, bound)
                first_ok = next((op.complete_ns for op in
                                 company_ops[bisect_left(invokes, w.cleared_ns):]
                                 if op.outcome == "ok" and op.complete_ns is not None
                                 and op.complete_ns < bound), None)
            masked = detected is None and rto_at is not None
            per_company.append(CompanyRecovery(
                company, i, w.kind, seconds_between(detected, w.injected_ns), how,
                None if w.cleared_ns is None else seconds_between(first_ok, w.cleared_ns),
                None if w.cleared_ns is None else seconds_between(rto_at, w.cleared_ns),
                masked=masked))
    return RecoveryResult(eps, per_company, per_window, reports_breaker=False)
