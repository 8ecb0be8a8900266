"""Whether two runs can be compared figure by figure at all, and what differs if not.

A ratio measured on 2 cores is not the same number on 8, an RTO against a remote PostgreSQL is
not the one against the embedded server, and the figures of `quick` are not those of `ci`
(other phases, other repetitions). `compare` refuses such pairs (exit 2, naming each difference)
unless told `--allow-incomparable`; differences that only shrink what is compared (a suite or a
chaos scenario only one run has) are warnings: the rows both runs have are still comparable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Difference:
    what: str
    old: str
    new: str
    refuse: bool  # True: the figures are not comparable; False: fewer rows are compared
    why: str

    def describe(self) -> str:
        return f"{self.what}: {self.old} -> {self.new} ({self.why})"


def _get(doc: Mapping[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(key)  # type: ignore[assignment]
    return doc


def _text(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(sorted(map(str, value))) or "none"
    return str(value)


def _pg_major(report: Mapping[str, Any]) -> str | None:
    version = _get(report, "environment", "postgres", "version")
    return str(version).split(".")[0].split()[0] if version else None


def _cores(report: Mapping[str, Any]) -> Any:
    machine = _get(report, "environment", "machine") or {}
    return machine.get("usable_cpus") or machine.get("cpus")


def _targets(report: Mapping[str, Any], suites: set[str]) -> dict[str, Any]:
    by_suite = _get(report, "config", "target", "by_suite") or {}
    return {s: t for s, t in by_suite.items() if s in suites}


def _scenarios(report: Mapping[str, Any]) -> set[str]:
    return {f"{s.get('name')} [{s.get('target')}]"
            for s in _get(report, "chaos", "scenarios") or []
            if isinstance(s, Mapping) and s.get("verdict") not in ("skipped", "error")}


def _load_shape(report: Mapping[str, Any]) -> str | None:
    load = report.get("load")
    if not isinstance(load, Mapping):
        return None
    rate = load.get("rate")
    return (f"{load.get('model')} model"
            + (f" at {rate:g} messages/s" if isinstance(rate, int | float) else "")
            + f", {load.get('companies')} companies, profile {load.get('profile')}")


# (what, reader, why it makes the figures incomparable)
_REFUSE = (
    ("PostgreSQL major version", _pg_major, "planner, WAL and commit costs differ"),
    ("PostgreSQL kind", lambda r: _get(r, "environment", "postgres", "kind"),
     "embedded, container and external servers differ in latency and in which faults run"),
    ("run profile", lambda r: _get(r, "run", "profile"),
     "profiles differ in phases, repetitions and scenario durations"),
    ("machine cores", _cores, "every ratio and latency depends on how many cores share the "
                              "work"),
    ("load run", _load_shape, "latencies at another arrival rate or concurrency are other "
                              "numbers"),
)


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Difference]:
    """Every way the two runs differ in what makes their figures comparable."""
    found: list[Difference] = []
    for what, read, why in _REFUSE:
        a, b = read(old), read(new)
        if a is not None and b is not None and a != b:
            found.append(Difference(what, _text(a), _text(b), True, why))
    suites_a = set(_get(old, "run", "suites") or [])
    suites_b = set(_get(new, "run", "suites") or [])
    common = suites_a & suites_b
    targets_a, targets_b = _targets(old, common), _targets(new, common)
    for suite in sorted(common):
        a, b = targets_a.get(suite), targets_b.get(suite)
        if a is not None and b is not None and a != b:
            found.append(Difference(f"target of the {suite} suite", _text(a), _text(b), True,
                                    "another store is another measurement"))
    if suites_a != suites_b and suites_a and suites_b:
        found.append(Difference("suites", _text(suites_a), _text(suites_b), False,
                                "only the suites both ran are compared"))
    if "chaos" in common:
        sa, sb = _scenarios(old), _scenarios(new)
        if sa != sb:
            gone, added = sorted(sa - sb), sorted(sb - sa)
            detail = "; ".join(x for x in (
                f"not in the new run: {', '.join(gone)}" if gone else "",
                f"only in the new run: {', '.join(added)}" if added else "") if x)
            found.append(Difference("chaos scenarios", f"{len(sa)} run", f"{len(sb)} run",
                                    False, f"only the scenarios both ran are compared; {detail}"))
    return found
