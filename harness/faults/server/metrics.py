"""`GET /metrics` (only with `--proxy-metrics`, as in Toxiproxy): byte counters in Prometheus text.

Same names and labels as Toxiproxy's proxy collectors: `toxiproxy_proxy_received_bytes_total`
and `toxiproxy_proxy_sent_bytes_total` by direction, proxy, listener and upstream.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.faults.server.proxy import FaultProxy

_NAMES = ("toxiproxy_proxy_received_bytes_total", "toxiproxy_proxy_sent_bytes_total")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render_proxy_metrics(proxies: Iterable[FaultProxy]) -> str:
    rows: list[list[str]] = [[], []]
    for proxy in sorted(proxies, key=lambda p: p.name):
        for direction, counts in sorted(proxy.bytes_totals().items()):
            labels = (f'direction="{direction}",listener="{_label(proxy.listen)}",'
                      f'proxy="{_label(proxy.name)}",upstream="{_label(proxy.upstream)}"')
            for i, count in enumerate(counts):
                rows[i].append(f"{_NAMES[i]}{{{labels}}} {count}")
    out: list[str] = []
    for name, lines in zip(_NAMES, rows, strict=True):
        out.append(f"# HELP {name} Bytes {'received' if 'received' in name else 'sent'} "
                   "by the proxy")
        out.append(f"# TYPE {name} counter")
        out.extend(lines)
    return "\n".join(out) + "\n"
