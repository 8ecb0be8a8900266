"""The signal suite in the report: one console line and one report.md row per scenario.

Rendered only from report.json's `signal` items (harness/signal/section.py writes them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.report.md_table import table as _table

HEADER = ["scenario", "target", "verdict", "messages", "deliveries", "decrypted",
          "undecryptable (by libsignal error)", "retries", "re-established", "lost", "new pod",
          "deliveries/s", "crypto / store / bridge"]


def _top(counts: Mapping[str, int], n: int = 3) -> str:
    return ", ".join(f"{k} {v}" for k, v in list(counts.items())[:n])


def _shares(split: Mapping[str, Any] | None) -> str:
    split = split or {}
    return " / ".join(f"{round((split.get(k) or 0) * 100)} %" for k in ("crypto", "store",
                                                                         "bridge"))


def _new_pod(item: Mapping[str, Any]) -> str:
    pod = item.get("new_pod") or {}
    if item.get("new_pod_ok"):
        return f"ok ({pod.get('conversations')} conversations)"
    failed = (pod.get("conversations") or 0) - (pod.get("continued") or 0)
    return f"FAILED {failed}/{pod.get('conversations')}" + (
        f" ({_top(pod.get('failed_by') or {}, 2)})" if pod.get("failed_by") else "")


def _successor(item: Mapping[str, Any]) -> str:
    """Across a client-crash: did the killed process's successor continue every
    conversation, and how many deliveries died with the process ('' for other items)."""
    if "successor_ok" not in item:
        return ""
    pod = item.get("successor") or {}  # a merged item keeps it per repetition only
    died = item.get("in_flight_at_kill")
    if item["successor_ok"]:
        state = "ok" + (f" ({pod['conversations']} conversations)" if pod else "")
    else:
        state = "FAILED" + (f" {pod.get('conversations', 0) - pod.get('continued', 0)}/"
                            f"{pod.get('conversations')}" if pod else "") + (
            f" ({pod['error']})" if pod.get("error") else "")
    return f"; successor {state}" + (f", {died} died with the process" if died else "")


def summary_line(item: Mapping[str, Any]) -> str:
    """`signal sever [resilient] PASSED: 137 messages, ...` (console and pytest.log)."""
    if item.get("verdict") == "error":
        return f"signal {item.get('name')} [{item.get('target')}] ERROR: {item.get('reason')}"
    top = _top(item.get("undecryptable") or {})
    throughput = item.get("throughput") or {}
    rate = throughput.get("deliveries_per_s")
    return (f"signal {item['name']} [{item['target']}] {str(item['verdict']).upper()}: "
            f"{item['messages']} messages, {item['deliveries']} deliveries, "
            f"{item['decrypted']} decrypted, {item['undecryptable_total']} undecryptable"
            f"{f' ({top})' if top else ''}, {item['reestablished']} re-established, "
            f"{item['lost']} lost; new pod {_new_pod(item)}{_successor(item)}; "
            f"{rate if rate is not None else '-'} deliveries/s "
            f"(crypto / store / bridge {_shares(throughput.get('time_split'))})")


def markdown(items: Sequence[Mapping[str, Any]]) -> list[str]:
    items = [i for i in items if i.get("verdict") != "error" or i.get("name")]
    if not items:
        return []
    rows = []
    for item in items:
        if item.get("verdict") == "error":
            rows.append([item.get("name"), item.get("target"), "error", *["—"] * 10])
            continue
        target = f"{item['target']} *" if item.get("contrast") else item["target"]
        rows.append([item["name"], target, item["verdict"], item["messages"],
                     item["deliveries"], item["decrypted"],
                     f"{item['undecryptable_total']}"
                     + (f" ({_top(item['undecryptable'])})" if item["undecryptable"] else ""),
                     item["retries"], item["reestablished"], item["lost"],
                     _new_pod(item) + _successor(item),
                     (item.get("throughput") or {}).get("deliveries_per_s"),
                     _shares((item.get("throughput") or {}).get("time_split"))])
    out = ["## Signal conversations", "",
           "Real Baileys cryptography through the store: every delivery of every message, "
           "decrypted or failed with libsignal's error; sessions started again by Baileys' "
           "retry path; a new pod (fresh instance, empty cache) continuing every conversation.",
           ""]
    out += _table(HEADER, rows)
    if any(i.get("contrast") for i in items):
        out += ["\\* contrast row: not gated", ""]
    keys = [(i, k) for i in items for k in (i.get("attribution") or {}).get("keys") or []]
    if keys:
        out += ["Failures attributed to store anomalies (key, anomaly, libsignal errors):", ""]
        out += [f"- {i['name']} [{i['target']}]: {k['company']} {k['key'][0]} "
                f"`{k['key'][1]}`: {k['anomaly']} -> {_top(k['errors'])}"
                for i, k in keys[:10]]
        out += [""]
    return out
