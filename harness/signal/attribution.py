"""Which store anomaly made a message undecryptable: decrypt failures joined with the checker.

Every failed decrypt attempt names the keys it involved at both ends (the recipient's session
of the sender, the sender's session of the recipient, for a `pkmsg` the recipient's identity
key and the pre-key of the bundle, for a group the sender key and the sender's sender-key
memory). The checker (harness/metrics/checker.py) judges the same history the workload wrote
(every key read and write, digests only) against the final state read from PostgreSQL; its
anomalies name (company, key). A failure is attributed to the anomalies on its keys that
happened before it (a read's anomaly at the read; `lost` / `resurrected` / `unexpected` in
the final state at the write they concern, or anywhere when no op is named). When none
matches but a store call failed inside the attempt, the failure is attributed to that: Baileys
turned a store error into a verdict (loadSession and validateSession read an error as "no
session"). Otherwise it stays unattributed: a Signal-level cause the store did not show
(simultaneous session starts, for one).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from harness.metrics.checker import CheckResult
from harness.metrics.history import History
from harness.signal.tally import Failure

STORE_ERROR = "store error seen by Baileys"
_SHOWN = 20


def attribute(failures: Sequence[Failure], check: CheckResult,
              history: History) -> dict[str, Any]:
    """{"attributed", "unattributed", "by_anomaly", "keys", "examples"} for the report;
    `keys` lists the keys failures were attributed to, most failures first, with the anomaly
    and the libsignal errors: which key broke which messages."""
    invoke_ns = {op.index: op.invoke_ns for op in history.ops()}
    anomalies: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for found in check.anomalies.values():
        for anomaly in found:
            if anomaly.key is not None:
                anomalies[(anomaly.company, anomaly.key[0], anomaly.key[1])].append(anomaly)
    by_cause: Counter[str] = Counter()
    by_key: dict[tuple[str, str, str, str], Counter[str]] = defaultdict(Counter)
    examples: list[dict[str, Any]] = []
    shown: set[tuple[str, str | None]] = set()
    attributed = 0
    for failure in failures:
        matches = list(_matching(failure, anomalies, invoke_ns))
        if matches:
            attributed += 1
            for anomaly in matches:
                by_cause[anomaly.name] += 1
            first = matches[0]
            cause = {"anomaly": first.name, "company": first.company, "key": list(first.key),
                     "op": first.op, "where": first.where, "note": first.note}
            for anomaly in {(a.company, *a.key, a.name) for a in matches}:
                by_key[anomaly][failure.label] += 1
        elif failure.store_failures:
            attributed += 1
            by_cause[STORE_ERROR] += 1
            cause = {"anomaly": None, "store_failures": failure.store_failures,
                     "note": "a store call failed inside the decrypt (Baileys read the error "
                             "as 'no session')"}
        else:
            cause = None
        kind = (failure.label, None if cause is None else cause["anomaly"])
        if len(examples) < _SHOWN and kind not in shown:
            shown.add(kind)
            examples.append({"message": failure.message, "sender": failure.sender,
                             "recipient": failure.recipient, "error": failure.label,
                             "attempt": failure.attempt, "cause": cause,
                             "keys": [list(k) for k in failure.keys]})
    keys = [{"company": company, "key": [key_type, key_id], "anomaly": name,
             "failures": sum(errors.values()), "errors": dict(errors.most_common())}
            for (company, key_type, key_id, name), errors in by_key.items()]
    keys.sort(key=lambda k: -k["failures"])
    return {"failures": len(failures), "attributed": attributed,
            "unattributed": len(failures) - attributed,
            "by_anomaly": dict(by_cause.most_common()), "keys": keys[:_SHOWN],
            "examples": examples}


def _matching(failure: Failure, anomalies: dict[tuple[str, str, str], list[Any]],
              invoke_ns: dict[int, int]) -> Iterable[Any]:
    for key in failure.keys:
        for anomaly in anomalies.get(key, ()):
            at = invoke_ns.get(anomaly.op) if anomaly.op is not None else None
            if at is None or at <= failure.at_ns:
                yield anomaly
