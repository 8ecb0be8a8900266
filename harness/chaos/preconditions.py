"""Did the fault happen the way the scenario claims? A scenario whose fault never met its
precondition proved nothing: its verdict is `inconclusive`, never `passed`.

Each scenario names one precondition of its fault (catalog `ScenarioInfo.precondition`) and
whether the outage must be *felt* by the callers:

- ``path-down``: the observer's own probe (harness.chaos.path_probe: the target's role, through
  the proxy) found the database path down at least once inside every fault window;
- ``terminated``: terminate-backends ended at least one session of the target's role;
- ``write-in-flight``: reset-mid-write's RST met its 812-pre-key write still in flight;
- ``unsynced-at-crash``: client-crash killed a process holding at least one acknowledged write
  the observer had not yet seen in PostgreSQL (else the kill tested nothing a write-through
  store does not do anyway);
- ``power-loss`` (the disk scenarios, harness/chaos/disk_shapes.py): as unsynced-at-crash, and
  the disk fault itself happened: the power loss caught the target mid-write (or tore / reordered
  its write), the ENOSPC / EIO hit the target's files, the fsyncs were slowed;
- felt: at least `MIN_FELT` calls noticed the fault: failed or indeterminate, slower than the
  harness's deadline, answered while the path was cut, or acknowledged writes the observer
  saw were not yet durable. (terminate-backends may be masked by an inline retry: not
  required there.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from harness.metrics.durability import Durability
from harness.metrics.history import Op
from harness.metrics.observations import Observations
from harness.metrics.windows import NS, Window

MIN_FELT = 5


@dataclass(frozen=True)
class Precondition:
    name: str
    met: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _path_down(windows: Sequence[Window], observations: Observations,
               end_ns: int) -> Precondition:
    hits = []
    for w in windows:
        probes = observations.probes_in(w.injected_ns, w.cleared_ns or end_ns)
        hits.append((sum(p.down for p in probes), len(probes)))
    windows_hit = sum(1 for down, _ in hits if down)
    details = ", ".join(f"{down}/{n}" for down, n in hits)
    return Precondition(
        "path-down", bool(hits) and windows_hit == len(hits),
        f"the observer's probe found the database path down in {windows_hit} of {len(hits)} "
        f"fault window(s) (probes down/run per window: {details or 'none'})")


def _param_true(name: str, params: Sequence[Mapping[str, Any]], key: str,
                what: str) -> Precondition:
    values = [p.get(key) for p in params]
    met = bool(values) and all(bool(v) for v in values)
    return Precondition(name, met, f"{what}: {values}")


def _unsynced_at_crash(ops: Sequence[Op], durability: Durability,
                       params: Sequence[Mapping[str, Any]]) -> Precondition:
    killed = [p.get("killed_at_ns") for p in params if p.get("killed_at_ns") is not None]
    if not killed:
        return Precondition("unsynced-at-crash", False, "no kill time was recorded")
    kill = int(killed[0])
    unsynced = 0
    for op in ops:
        if not op.is_write or op.outcome != "ok" or op.complete_ns is None:
            continue
        if op.complete_ns < kill:
            durable = durability.durable_ns(op.index)
            if durable is None or durable > kill:
                unsynced += 1
    return Precondition(
        "unsynced-at-crash", unsynced > 0,
        f"{unsynced} acknowledged write(s) were not yet seen in PostgreSQL when the process was "
        "killed" + ("" if unsynced else " (a write-through store: the kill tested nothing a "
                    "clean stop would not)"))


def _disk_fault(params: Sequence[Mapping[str, Any]]) -> Precondition:
    found = [p["disk_precondition"] for p in params if p.get("disk_precondition")]
    if not found:
        return Precondition("disk-fault", False, "the disk scenario recorded no disk fault")
    return Precondition(str(found[0]["name"]), all(bool(f["met"]) for f in found),
                        "; ".join(str(f["detail"]) for f in found))


def felt_calls(ops: Sequence[Op], windows: Sequence[Window], durability: Durability, *,
               deadline_s: float, cut_from_ns: Mapping[int, int]) -> int:
    """Calls that noticed a fault window (see the module docstring)."""
    deadline_ns = round(deadline_s * NS)
    felt = 0
    for op in ops:
        for i, w in enumerate(windows):
            cleared = w.cleared_ns if w.cleared_ns is not None else 1 << 62
            done = op.complete_ns
            if op.invoke_ns > cleared or (done is not None and done < w.injected_ns):
                continue
            slow = done is None or done - op.invoke_ns > deadline_ns
            cut = cut_from_ns.get(i)
            no_db = (op.outcome == "ok" and cut is not None and op.invoke_ns >= cut
                     and done is not None and done <= cleared)
            early = (op.is_write and op.outcome == "ok"
                     and (at := durability.acked_before_durable(op.index)) is not None
                     and at <= cleared)
            if op.outcome in ("fail", "info") or slow or no_db or early:
                felt += 1
                break
    return felt


def evaluate(precondition: str, felt_required: bool, *, windows: Sequence[Window],
             params: Sequence[Mapping[str, Any]], observations: Observations,
             ops: Sequence[Op], durability: Durability, deadline_s: float,
             cut_from_ns: Mapping[int, int], end_ns: int) -> list[Precondition]:
    """The scenario's preconditions, each met or not, with what was seen."""
    found: list[Precondition] = []
    if not windows:
        return [Precondition(precondition, False, "no fault window was recorded")]
    if precondition == "path-down":
        found.append(_path_down(windows, observations, end_ns))
    elif precondition == "terminated":
        found.append(Precondition(
            "terminated", all(int(p.get("terminated") or 0) > 0 for p in params),
            f"sessions of the target's role ended per window: "
            f"{[p.get('terminated') for p in params]}"))
    elif precondition == "write-in-flight":
        found.append(_param_true("write-in-flight", params, "write_in_flight",
                                 "an 812-pre-key write was on the wire when the RST hit"))
    elif precondition == "unsynced-at-crash":
        found.append(_unsynced_at_crash(ops, durability, params))
    elif precondition == "power-loss":
        found.append(_unsynced_at_crash(ops, durability, params))
        found.append(_disk_fault(params))
    else:
        raise ValueError(f"unknown precondition {precondition!r}")
    if felt_required:
        count = felt_calls(ops, windows, durability, deadline_s=deadline_s,
                           cut_from_ns=cut_from_ns)
        found.append(Precondition(
            "felt", count >= MIN_FELT,
            f"{count} call(s) noticed the fault (failed, indeterminate, slower than "
            f"{deadline_s:g} s, answered without the database, or acknowledged before "
            f"durable); at least {MIN_FELT} needed"))
    return found
