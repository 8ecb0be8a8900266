"""The RTO table: one row per chaos scenario run, as plain text cells.

MTTD and RTO are the observed figures (the harness's observer and the callers' history); the
store's own, from its `last_source()` and breaker, sit in a column of their own, never judged.

Shared by report.md (Markdown, every cell escaped there) and the CLI's end summary (a rich
table), so the two never disagree. Input is report.json's `chaos.scenarios` items; a key the
scenario did not record shows as "—" rather than failing the whole report.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

HEADER = ["scenario", "target", "companies × reps", "MTTD p50/p95/max s", "RTO p50/p95/max s",
          "store's own MTTD / RTO p95 s", "first success p95 s", "acked writes",
          "lost writes", "stale reads", "indeterminate writes",
          "availability reads/writes", "journal peak",
          "Signal messages / decrypted / undecryptable", "verdict"]

PASSING_VERDICTS = frozenset({"passed", "valid", "ok"})
NEUTRAL_VERDICTS = frozenset({"skipped"})  # could not run here (e.g. no process control)
# the fault never met its precondition, or the figures could not decide: neither passed nor a
# finding about the store
UNDECIDED_VERDICTS = frozenset({"inconclusive", "undecided"})
DASH = "—"

# What one count of each anomaly is (harness/metrics/checker.py): the verdict's numbers count
# keys or key reads, the table's columns count calls, so the two must never share a word.
ANOMALY_UNITS = {"lost": ("key", "keys"), "resurrected": ("key", "keys"),
                 "stale-read": ("key read", "key reads"),
                 "unexpected": ("key value", "key values"),
                 "creds-reset": ("creds read", "creds reads"),
                 "torn": ("write", "writes"), "torn-write": ("write", "writes"),
                 "late-write": ("write", "writes"), "hang": ("call", "calls")}
OCCURRENCES = ("occurrence", "occurrences")

DEFINITIONS = ("Observed from outside the store, over companies × repetitions. MTTD: fault "
               "injected → the company's first call that failed, ran past the harness's "
               "deadline or was answered without the database. RTO: fault cleared (process "
               "faults: PostgreSQL accepting connections again) → every write the company had "
               "acknowledged, and a new one, read back from PostgreSQL by the observer. The "
               "store's own figures (its last_source and breaker) are shown beside, never "
               "judged. Inconclusive: the fault never met its precondition, so it proved "
               "nothing. Contrast rows run the plain store for comparison and are not gated.")

LEGEND = ("Counts: acked writes, lost writes and indeterminate writes are write calls (one call "
          "can carry many keys; indeterminate: the caller never learned whether it applied, so "
          "neither lost nor safe); stale reads are read calls that returned at least one "
          "superseded value. The verdict names each anomaly with its own unit: lost and "
          "resurrected count keys, stale-read counts keys read stale (one read call can return "
          "several), torn and late-write count write calls, hang counts calls, others count "
          "occurrences -- so its numbers are "
          "not the columns' numbers.")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def seconds(value: Any) -> str:
    v = _number(value)
    if v is None:
        return DASH
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def spread(stats: Any) -> str:
    """`{p50, p95, max}` as "p50 / p95 / max" seconds."""
    if not isinstance(stats, Mapping):
        return DASH
    return " / ".join(seconds(stats.get(k)) for k in ("p50", "p95", "max"))


def p95(stats: Any) -> str:
    """A `{p50, p95, max}` mapping's p95, or a plain number."""
    return seconds(stats.get("p95") if isinstance(stats, Mapping) else stats)


def share(value: Any) -> str:
    """A share 0..1 as a percentage."""
    v = _number(value)
    return DASH if v is None else f"{v * 100:.1f} %"


def count(value: Any) -> str:
    v = _number(value)
    return DASH if v is None else f"{v:g}"


def anomaly_names(scenario: Mapping[str, Any]) -> list[str]:
    """Each anomaly found, with its count in its own unit: "lost (1430 keys)"."""
    anomalies = scenario.get("anomalies")
    if not isinstance(anomalies, Mapping):
        return []
    out = []
    for name, n in sorted(anomalies.items()):
        value = _number(n)
        if value:
            one, many = ANOMALY_UNITS.get(str(name), OCCURRENCES)
            out.append(f"{name} ({value:g} {one if value == 1 else many})")
    return out


def verdict(scenario: Mapping[str, Any]) -> str:
    """The scenario's verdict and, when there are any, its anomalies by name (inconclusive:
    which precondition was not met)."""
    text = str(scenario.get("verdict") or "no verdict")
    names = anomaly_names(scenario)
    if names:
        return f"{text}: {', '.join(names)}"
    precondition = scenario.get("precondition")
    if text == "inconclusive" and isinstance(precondition, Mapping):
        return f"inconclusive: {precondition.get('name')} not met"
    return text


def signal(scenario: Mapping[str, Any], *, compact: bool = False) -> str:
    """Real Signal conversations run beside the fault: messages sent / decrypted /
    undecryptable (— when none ran)."""
    item = scenario.get("signal")
    if not isinstance(item, Mapping):
        return DASH
    numbers = [count(item.get("messages")), count(item.get("decrypted")),
               count(item.get("undecryptable_with_new_pod"))]
    text = " / ".join(numbers)
    if compact:
        return f"{numbers[0]}\n{numbers[1]}/{numbers[2]}"
    if _number(item.get("reestablished")):
        text += f"; {count(item['reestablished'])} re-established"
    return text


def reported(scenario: Mapping[str, Any]) -> str:
    """What the store says of itself (its last_source / breaker): shown, never judged."""
    own = scenario.get("reported")
    if not isinstance(own, Mapping):
        return DASH
    return f"{p95(own.get('mttd_s'))} / {p95(own.get('rto_s'))}"


def verdict_passed(scenario: Mapping[str, Any]) -> bool:
    return not anomaly_names(scenario) and str(scenario.get("verdict")) in PASSING_VERDICTS


def verdict_kind(scenario: Mapping[str, Any]) -> str:
    """"passed", "skipped", "inconclusive" or "failed": how to colour the verdict."""
    if verdict_passed(scenario):
        return "passed"
    if not anomaly_names(scenario) and str(scenario.get("verdict")) in NEUTRAL_VERDICTS:
        return "skipped"
    if not anomaly_names(scenario) and str(scenario.get("verdict")) in UNDECIDED_VERDICTS:
        return "inconclusive"
    return "failed"


def target(scenario: Mapping[str, Any]) -> str:
    name = str(scenario.get("target") or DASH)
    return f"{name} (contrast, not gated)" if scenario.get("contrast") else name


def row(scenario: Mapping[str, Any]) -> list[str]:
    availability = scenario.get("availability")
    availability = availability if isinstance(availability, Mapping) else {}
    journal = scenario.get("journal")
    journal = journal if isinstance(journal, Mapping) else {}
    return [
        str(scenario.get("name") or DASH), target(scenario),
        f"{count(scenario.get('companies'))} × {count(scenario.get('repetitions'))}",
        spread(scenario.get("mttd_s")), spread(scenario.get("rto_s")), reported(scenario),
        p95(scenario.get("time_to_first_success_s")),
        count(scenario.get("acked_writes")), count(scenario.get("lost_writes")),
        count(scenario.get("stale_reads")), count(scenario.get("indeterminate_writes")),
        f"{share(availability.get('reads'))} / {share(availability.get('writes'))}",
        count(journal.get("peak_depth")), signal(scenario), verdict(scenario),
    ]


def _ms(value: float) -> str:
    """3 significant digits without exponent notation (2000 ms, not 2e+03)."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _latency(latency: Any) -> str | None:
    """p50 (p99) in ms per phase, when the scenario recorded them."""
    if not isinstance(latency, Mapping):
        return None
    parts = []
    for phase in ("before", "during", "after"):
        v = latency.get(phase)
        if isinstance(v, Mapping):
            p50, p99 = _number(v.get("p50")), _number(v.get("p99"))
            if p50 is not None:
                parts.append(f"{phase} {_ms(p50)}" + (f" (p99 {_ms(p99)})" if p99 is not None
                                                     else "") + " ms")
        elif _number(v) is not None:
            parts.append(f"{phase} {_ms(_number(v))} ms")
    return "latency p50 " + ", ".join(parts) if parts else None


def notes(scenario: Mapping[str, Any]) -> str:
    """Why it was skipped or errored, the fault, PostgreSQL's own recovery (not part of RTO),
    the MTTD bound when it is not the gate's, replay and latency: one line."""
    parts = []
    if scenario.get("reason"):
        parts.append(f"{scenario.get('verdict') or 'note'}: {scenario['reason']}")
    fault = scenario.get("fault")
    fault = fault if isinstance(fault, Mapping) else {}
    if fault.get("kind"):
        duration, cycles = _number(fault.get("duration_s")), _number(fault.get("cycles"))
        parts.append(f"fault {fault['kind']}" + (f" for {duration:g} s" if duration is not None
                                                 else "")
                     + (f", {cycles:g} cycles" if cycles and cycles > 1 else ""))
    pg = scenario.get("pg_recovery_s")
    pg_text = spread(pg) if isinstance(pg, Mapping) else seconds(pg)
    if pg_text.strip(" /" + DASH):
        parts.append(f"PostgreSQL accepted connections again after {pg_text} s "
                     f"{'(p50 / p95 / max) ' if isinstance(pg, Mapping) else ''}"
                     "(its own crash recovery; RTO counts from then)")
    mttd_bound = _number(fault.get("mttd_threshold_s"))
    if mttd_bound is not None:
        parts.append(f"MTTD bound {mttd_bound:g} s (the harness's deadline + 0.2 s: the fault "
                     "makes calls wait, not fail)")
    if _number(scenario.get("masked")):
        parts.append(f"{count(scenario['masked'])} company-window(s) masked the fault (callers "
                     "never saw it; recovered): not a missed detection")
    observer = scenario.get("observer")
    if isinstance(observer, Mapping) and observer.get("mode"):
        parts.append(f"observer: {observer['mode']} reads every "
                     f"{_number(observer.get('interval_s')) or 0:g} s "
                     f"(round p50 {seconds((_number(observer.get('round_ms_p50')) or 0) / 1000)}"
                     " s)")
    journal = scenario.get("journal")
    if isinstance(journal, Mapping) and _number(journal.get("replay_rate")) is not None:
        parts.append(f"journal replay {_number(journal['replay_rate']):.0f} rows/s")
    if _number(scenario.get("conflicts")):
        parts.append(f"{count(scenario['conflicts'])} replay conflicts (newer row kept)")
    latency = _latency(scenario.get("latency_ms"))
    if latency:
        parts.append(latency)
    return "; ".join(parts)


COMPACT_HEADER = ["scenario", "target", "MTTD\np95 s", "RTO\np95 s", "acked\nwrites",
                  "lost\nwrites", "stale\nreads", "indet.\nwrites", "avail.\nr/w %",
                  "Signal msgs\ndecr/undecr", "verdict"]  # two-line headers: narrow


def compact_row(scenario: Mapping[str, Any]) -> list[str]:
    """The terminal's narrower row: p95s only, availability as whole percentages."""
    availability = scenario.get("availability")
    availability = availability if isinstance(availability, Mapping) else {}
    shares = [_number(availability.get(k)) for k in ("reads", "writes")]
    name = str(scenario.get("target") or DASH) + ("*" if scenario.get("contrast") else "")
    return [
        str(scenario.get("name") or DASH), name, p95(scenario.get("mttd_s")),
        p95(scenario.get("rto_s")), count(scenario.get("acked_writes")),
        count(scenario.get("lost_writes")), count(scenario.get("stale_reads")),
        count(scenario.get("indeterminate_writes")),
        "/".join(DASH if v is None else f"{v * 100:.0f}" for v in shares),
        signal(scenario, compact=True), verdict(scenario),
    ]
