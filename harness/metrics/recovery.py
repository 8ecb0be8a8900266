"""Recovery figures per company and fault window as the STORE reports them: MTTD, time to first
success, RTO from its `last_source()` and breaker transitions.

These are the store's own word: the chaos report keeps them under `reported`, beside the
observed figures (`harness.metrics.observed_recovery`), and no verdict rests on them. The
shared result types (`CompanyRecovery`, `RecoveryResult`, `summarize`) live here.

All times are on the history's clock (monotonic ns); results are seconds. For each window
(overlapping windows merged, see `windows.episodes`), events count only before the next
window's injection (or the end of the history): a recovery that did not happen by then is
None, "not recovered", and `spread` turns any None into a failing p95.

- MTTD: the earliest of (the company's first op invoked at/after injection that completed
  ``fail``/``info``; its first ``ok`` op served from a non-"db" source, i.e. the store switched
  to cache/journal; the store's first breaker transition to "open") minus injection.
- time to first success: the company's first ``ok`` op invoked after the clear and served from
  "db" (or from an unknown source: targets that do not say) → its completion minus clear.
- RTO: the later of (the moment from which the breaker stays "closed", for targets that report
  a breaker; the completion of the company's first ``ok`` write invoked after the clear and
  served from "db"/unknown) minus clear. A write lands in PostgreSQL only after the company's
  journaled writes (they queue behind them), so it also marks that company's journal drained.
  The breaker must *stay* closed until the next injection: a breaker that closes and opens
  again had not recovered.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from harness.metrics.history import History, Op
from harness.metrics.latency import spread
from harness.metrics.windows import (
    NS,
    StatusSample,
    Window,
    WindowLike,
    breaker_states,
    episodes,
    normalize_samples,
)

_END = 1 << 62
FIGURES = ("mttd_s", "time_to_first_success_s", "rto_s")
DB_SOURCES = (None, "db")


@dataclasses.dataclass(frozen=True)
class CompanyRecovery:
    company: str
    window: int                      # index into RecoveryResult.windows
    kind: str
    mttd_s: float | None             # None: not detected before the next window / the end
    detected_by: str | None          # "error" | "fallback" | "breaker"
    time_to_first_success_s: float | None
    rto_s: float | None              # None: not recovered
    masked: bool = False             # callers never saw the fault, and it recovered


@dataclasses.dataclass(frozen=True)
class WindowRecovery:
    """Store-wide facts about one window (the breaker and journal are per store)."""

    window: int
    kind: str
    injected_ns: int
    cleared_ns: int | None
    duration_s: float | None
    breaker_open_s: float | None     # first transition to open after injection
    breaker_closed_s: float | None   # from clear until the breaker stays closed
    journal_drained_s: float | None  # from clear until a sample shows an empty journal


@dataclasses.dataclass
class RecoveryResult:
    windows: list[Window]
    per_company: list[CompanyRecovery]
    per_window: list[WindowRecovery]
    reports_breaker: bool

    def values(self, figure: str) -> list[float | None]:
        """One value per company and window; MTTD leaves out masked companies (never
        detected, yet recovered: nothing to time), so only a real miss is a missing value."""
        if figure not in FIGURES:
            raise ValueError(f"unknown recovery figure {figure!r}; one of {FIGURES}")
        return [getattr(r, figure) for r in self.per_company
                if not (figure == "mttd_s" and r.masked)]

    @property
    def masked(self) -> int:
        return sum(r.masked for r in self.per_company)

    def summary(self) -> dict[str, dict[str, Any]]:
        return summarize([self])


def summarize(results: Iterable[RecoveryResult]) -> dict[str, dict[str, Any]]:
    """`spread` of each figure over companies × windows × repetitions (one result each); MTTD's
    also says how many company-windows were masked."""
    results = list(results)
    out = {figure: spread(v for r in results for v in r.values(figure)) for figure in FIGURES}
    out["mttd_s"]["masked"] = sum(r.masked for r in results)
    return out


def seconds_between(later: int | None, earlier: int) -> float | None:
    return None if later is None else (later - earlier) / NS


def _first_state_change(changes: Sequence[tuple[int, str]], state: str, start: int,
                        bound: int) -> int | None:
    for t, s in changes[bisect_left(changes, (start, "")):]:
        if t >= bound:
            return None
        if s == state:
            return t
    return None


def _stays_closed_from(changes: Sequence[tuple[int, str]], cleared: int,
                       bound: int) -> int | None:
    """The moment from which the breaker is closed until `bound` (None if it is not closed
    at the end, or its state is unknown)."""
    i = bisect_right(changes, (cleared, "\uffff"))
    ready = cleared if i and changes[i - 1][1] == "closed" else None
    for t, s in changes[i:]:
        if t >= bound:
            break
        if s == "closed":
            ready = t if ready is None else ready
        else:
            ready = None
    return ready


def _journal_drained(samples: Sequence[tuple[int, Mapping[str, Any]]], cleared: int,
                     bound: int) -> int | None:
    start = bisect_left([t for t, _ in samples], cleared)
    for t, s in samples[start:]:
        if t >= bound:
            return None
        if s.get("journal_depth") == 0:
            return t
    return None


def by_company(ops: Iterable[Op]) -> dict[str, list[Op]]:
    """Each company's ops, in invoke order."""
    grouped: dict[str, list[Op]] = {}
    for op in ops:
        grouped.setdefault(op.company, []).append(op)
    for company_ops in grouped.values():
        company_ops.sort(key=lambda op: op.invoke_ns)
    return grouped


def recovery(history: History | Sequence[Op], windows: Iterable[WindowLike] | None = None, *,
             samples: Iterable[StatusSample] = (),
             transitions: Iterable[tuple[int, str]] = (),
             companies: Iterable[str] | None = None) -> RecoveryResult:
    """MTTD, time to first success and RTO per company and window.

    ``windows``: FaultWindows, ``(kind, injected_ns, cleared_ns)`` tuples, or None for the
    history's nemesis events. ``samples``: ``(t_ns, status)`` with status either flat
    (``{"breaker", "journal_depth", "mode"}``) or a store's ``status()``; ``transitions``:
    ``(t_ns, state)`` breaker transitions. Both optional (targets without ``status()``).
    ``companies``: every company that must recover (default: those in the history); one
    without ops after a clear counts as not recovered.
    """
    ops = history.ops() if isinstance(history, History) else list(history)
    if windows is None and isinstance(history, History):
        windows = history.fault_windows()
    eps = episodes(windows or ())
    status = normalize_samples(samples)
    changes = breaker_states(status, transitions)
    has_breaker = bool(changes)
    grouped = by_company(ops)
    names = sorted(set(companies) if companies is not None else grouped)

    per_window: list[WindowRecovery] = []
    bounds = [eps[i + 1].injected_ns if i + 1 < len(eps) else _END for i in range(len(eps))]
    breaker_ready: list[int | None] = []
    breaker_opened: list[int | None] = []
    for i, w in enumerate(eps):
        bound = bounds[i]
        opened = _first_state_change(changes, "open", w.injected_ns, bound)
        ready = (None if w.cleared_ns is None or not has_breaker
                 else _stays_closed_from(changes, w.cleared_ns, bound))
        drained = None if w.cleared_ns is None else _journal_drained(status, w.cleared_ns, bound)
        breaker_ready.append(ready)
        breaker_opened.append(opened)
        per_window.append(WindowRecovery(
            i, w.kind, w.injected_ns, w.cleared_ns,
            None if w.cleared_ns is None else (w.cleared_ns - w.injected_ns) / NS,
            seconds_between(opened, w.injected_ns),
            None if w.cleared_ns is None else seconds_between(ready, w.cleared_ns),
            None if w.cleared_ns is None else seconds_between(drained, w.cleared_ns)))

    per_company: list[CompanyRecovery] = []
    for company in names:
        company_ops = grouped.get(company, [])
        invokes = [op.invoke_ns for op in company_ops]
        for i, w in enumerate(eps):
            bound = bounds[i]
            detected, detected_by = _detection(company_ops, invokes, w.injected_ns, bound)
            opened = breaker_opened[i]
            if opened is not None and (detected is None or opened < detected):
                detected, detected_by = opened, "breaker"
            first_ok = first_write = None
            if w.cleared_ns is not None:
                first_ok, first_write = _first_db_success(company_ops, invokes, w.cleared_ns,
                                                          bound)
            rto_at: int | None = None
            if first_write is not None and w.cleared_ns is not None:
                rto_at = first_write
                if has_breaker:
                    ready = breaker_ready[i]
                    rto_at = None if ready is None else max(ready, first_write)
            per_company.append(CompanyRecovery(
                company, i, w.kind, seconds_between(detected, w.injected_ns), detected_by,
                None if w.cleared_ns is None else seconds_between(first_ok, w.cleared_ns),
                None if w.cleared_ns is None else seconds_between(rto_at, w.cleared_ns)))
    return RecoveryResult(eps, per_company, per_window, has_breaker)


def _detection(ops: Sequence[Op], invokes: Sequence[int], injected: int,
               bound: int) -> tuple[int | None, str | None]:
    best: int | None = None
    how: str | None = None
    for op in ops[bisect_left(invokes, injected):bisect_left(invokes, bound)]:
        done = op.complete_ns
        if done is None or done >= bound or (best is not None and done >= best):
            continue
        if op.outcome in ("fail", "info"):
            best, how = done, "error"
        elif op.outcome == "ok" and op.source not in DB_SOURCES:
            best, how = done, "fallback"
    return best, how


def _first_db_success(ops: Sequence[Op], invokes: Sequence[int], cleared: int,
                      bound: int) -> tuple[int | None, int | None]:
    first_ok: int | None = None
    first_write: int | None = None
    for op in ops[bisect_left(invokes, cleared):bisect_left(invokes, bound)]:
        done = op.complete_ns
        if op.outcome != "ok" or op.source not in DB_SOURCES or done is None or done >= bound:
            continue
        if first_ok is None or done < first_ok:
            first_ok = done
        if op.is_write and (first_write is None or done < first_write):
            first_write = done
    return first_ok, first_write


def availability(history: History | Sequence[Op],
                 windows: Iterable[WindowLike] | None = None) -> dict[str, Any]:
    """Share of ok completions among completed reads and writes invoked inside a window
    (None when there were none). Whether the reads told the truth is the checker's job."""
    ops = history.ops() if isinstance(history, History) else list(history)
    if windows is None and isinstance(history, History):
        windows = history.fault_windows()
    eps = episodes(windows or ())
    injected = [w.injected_ns for w in eps]
    counts = {"reads_ok": 0, "reads_completed": 0, "writes_ok": 0, "writes_completed": 0}
    for op in ops:
        if op.outcome is None or not eps or op.invoke_ns < injected[0]:
            continue
        if not eps[bisect_right(injected, op.invoke_ns) - 1].covers(op.invoke_ns):
            continue
        kind = "reads" if op.is_read else "writes"
        counts[f"{kind}_completed"] += 1
        counts[f"{kind}_ok"] += op.outcome == "ok"
    return {"reads": (counts["reads_ok"] / counts["reads_completed"]
                      if counts["reads_completed"] else None),
            "writes": (counts["writes_ok"] / counts["writes_completed"]
                       if counts["writes_completed"] else None),
            **counts}


def journal_summary(samples: Iterable[StatusSample],
                    status: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Peak journal depth seen in the samples (and the store's own peak, when its final
    ``status()`` is given) and the replay rate the store reports (passed through)."""
    depths = [s["journal_depth"] for _, s in normalize_samples(samples)
              if s.get("journal_depth") is not None]
    journal = (status or {}).get("journal") or {}
    if journal.get("peak_depth") is not None:
        depths.append(journal["peak_depth"])
    return {"peak_depth": max(depths) if depths else None,
            "replay_rate": journal.get("replay_rate")}
