"""The signal workload's model, without Node.js: who talks to whom, the server stand-in's
delivery guarantees and bundles, verdict labels and counts, the history written from an engine
trace, attribution of failures to anomalies, the section's verdict and its rendering, and the
journal a killed process leaves for its successor."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from pathlib import Path
from typing import Any

from harness.chaos.crash_signal import _committing, _in_flight
from harness.metrics.checker import ANOMALY_NAMES, Anomaly, CheckResult
from harness.metrics.history import READ_KEYS, WRITE_CREDS, WRITE_KEYS, History
from harness.report.signal_table import markdown, summary_line
from harness.signal.attribution import STORE_ERROR, attribute
from harness.signal.engine import EngineTiming
from harness.signal.journal import JournalWriter, read_journal
from harness.signal.recorder import Processes, record_trace
from harness.signal.section import figures_of, verdict
from harness.signal.server import Envelope, Server
from harness.signal.tally import Failure, Message, Tally, label
from harness.signal.topology import address, build_topology, sender_key_id

COMPANIES = [f"co{i:03d}" for i in range(10)]


def test_topology_pairs_every_company_with_its_contacts_once() -> None:
    topo = build_topology(COMPANIES, contacts=2, groups=3, group_size=(3, 8),
                          rng=random.Random(1))
    partners = Counter(m for conv in topo.direct for m in conv.members)
    assert set(partners.values()) == {2}  # a ring: every company in two 1:1 conversations
    assert len({frozenset(c.members) for c in topo.direct}) == len(topo.direct)
    assert all(3 <= len(g.members) <= 8 and g.jid.endswith("@g.us") for g in topo.groups)
    pairs = topo.pairs()
    order = {c: i for i, c in enumerate(COMPANIES)}
    assert all(order[a] < order[b] for a, b in pairs) and len(set(pairs)) == len(pairs)
    for conv in topo.conversations:  # every two members of any conversation start a session
        assert all((a, b) in pairs for a in conv.members for b in conv.members
                   if order[a] < order[b])
    jid = topo.jids["co003"]
    assert jid == "100000000000003@lid" and address(jid) == "100000000000003_1.0"
    assert sender_key_id("1@g.us", jid) == "1@g.us::100000000000003_1::0"


def _server(delivered: list[Envelope], **kw: Any) -> Server:
    return Server(delivered.append, random.Random(0), **kw)


def test_server_keeps_a_channel_in_order_and_waits_for_the_ack() -> None:
    delivered: list[Envelope] = []
    server = _server(delivered)
    first, second = (Envelope(n, ("a", "b"), {}) for n in (1, 2))
    other = Envelope(3, ("c", "b"), {})
    server.post(first)
    server.post(second)
    server.post(other)
    assert [e.delivery for e in delivered] == [1, 3]  # the second waits for the first's ack
    assert not server.idle
    server.settle(first)
    assert [e.delivery for e in delivered] == [1, 3, 2]
    server.settle(other)
    server.settle(second)
    assert server.idle


def test_server_duplicates_after_the_ack_without_blocking_the_channel() -> None:
    delivered: list[Envelope] = []
    server = _server(delivered, duplicate_rate=1.0)
    first, second = Envelope(1, ("a", "b"), {}), Envelope(2, ("a", "b"), {})
    server.post(first)
    server.post(second)
    server.settle(first)
    assert [(e.delivery, e.duplicate) for e in delivered] == [(1, False), (1, True), (2, False)]
    server.settle(delivered[1])  # settling a duplicate does not move the channel
    assert not server.idle
    server.settle(second)
    assert server.counts["duplicates"] == 2


async def test_server_delays_deliveries_on_demand() -> None:
    delivered: list[Envelope] = []
    server = _server(delivered, delay_s=(0.05, 0.05))
    server.post(Envelope(1, ("a", "b"), {}))
    assert delivered == [] and not server.idle
    await asyncio.sleep(0.1)
    assert [e.delivery for e in delivered] == [1]


def test_bundles_hand_out_each_pre_key_once_then_none() -> None:
    server = _server([], low_pre_keys=1)
    server.publish("co1", {"registration_id": 7}, [(1, b"\x05a"), (2, b"\x05b")])
    assert server.fetch_bundle("co1")["pre_key"] == [1, b"\x05a"]
    assert server.low("co1")
    assert server.fetch_bundle("co1")["pre_key"] == [2, b"\x05b"]
    bare = server.fetch_bundle("co1")
    assert "pre_key" not in bare and bare["registration_id"] == 7
    assert server.counts["bundles without pre-key"] == 1
    server.upload("co1", [(3, b"\x05c")])
    assert server.fetch_bundle("co1")["pre_key"] == [3, b"\x05c"]


def test_labels_are_libsignal_s_own_words() -> None:
    no_match = {"name": "SessionError", "message": "No matching sessions found for message"}
    assert label({**no_match, "causes": ["Bad MAC", "Key used already or never filled"]}) == \
        "Bad MAC"
    assert label({**no_match, "causes": ["decrypts on a copy"]}) == "No matching sessions"
    assert label({"name": "PreKeyError", "message": "Invalid PreKey ID"}) == "Invalid PreKey ID"
    assert label({"name": "StoreUnavailable", "message": "x", "store": True}) == \
        "store: StoreUnavailable"
    assert label({"name": "Error", "message": "Received message with old counter: 3, 1"}) == \
        "Received message with old counter"
    assert label({"name": "NodeCallTimeout", "message": "x", "harness": True}) == \
        "harness: NodeCallTimeout"


def _failure(message: str, error: str, keys: list[tuple[str, str, str]], *, at_ns: int = 100,
             store_failures: int = 0) -> Failure:
    return Failure(at_ns, message, "co1", "co2", error, {"message": error}, keys,
                   store_failures)


def test_tally_counts_deliveries_by_first_error_and_outcome() -> None:
    tally = Tally()
    message = tally.new_message(Message("m1", "d0", "direct", "co1", b"m:m1", 0), ["co2"])
    group = tally.new_message(Message("m2", "g0", "group", "co1", b"m:m2", 0), ["co2", "co3"])
    tally.failed(message.deliveries["co2"], _failure("m1", "Bad MAC", []))
    tally.failed(message.deliveries["co2"], _failure("m1", "No session record", []))
    tally.decrypted(message.deliveries["co2"])
    tally.decrypted(group.deliveries["co2"])
    tally.lost(group.deliveries["co3"], "retries exhausted")
    tally.reestablished["retry"] += 1
    summary = tally.summary()
    assert summary["deliveries"] == 3 and summary["decrypted"] == 2
    assert summary["undecryptable"] == {"Bad MAC": 1}  # a delivery counts once, by its first
    assert summary["failed_attempts"] == {"Bad MAC": 1, "No session record": 1}
    assert summary["decrypted_after_retry"] == 1
    assert summary["lost"] == 1 and summary["lost_by"] == {"retries exhausted": 1}
    assert summary["reestablished"] == 1


def test_a_killed_workload_s_journal_tells_its_successor_what_to_receive(
        tmp_path: Path) -> None:
    """Written as the workload writes it, cut mid-line by the kill: the tally comes back
    whole, the roster as last changed, the envelopes the server still held in order, and of
    those in hand only the one whose decrypt had written is excused."""
    path = tmp_path / "journal.jsonl"
    journal = JournalWriter(path)
    topology = build_topology(COMPANIES[:4], contacts=2, groups=1, group_size=(3, 3),
                              rng=random.Random(2))
    [group] = topology.groups
    journal({"e": "topology", **topology.to_doc()})
    tally = Tally(sink=journal)
    m1 = tally.new_message(Message("m1", "d0", "direct", "co000", b"m:m1", 5), ["co001"])
    m2 = tally.new_message(Message("m2", "d0", "direct", "co000", b"m:m2", 6), ["co001"])
    m3 = tally.new_message(Message("m3", "d1", "direct", "co001", b"m:m3", 7), ["co002"])
    m4 = tally.new_message(Message("m4", "d1", "direct", "co002", b"m:m4", 8), ["co001"])
    tally.new_message(Message("m5", "d2", "direct", "co003", b"m:m5", 9), ["co000"])
    tally.failed(m1.deliveries["co001"], _failure("m1", "Bad MAC", [("co001", "session", "x")]))
    tally.retried()
    tally.reestablish("co000", "co001", "retry")
    tally.decrypted(m1.deliveries["co001"], at_ns=50)
    for seq, message, to in ((1, m2, "co001"), (2, m3, "co002"), (3, m4, "co001")):
        tally.sent(message)
        journal({"e": "post", "n": seq, "id": message.id, "to": to,
                 "ch": [message.sender, to], "p": {"type": "msg", "ciphertext": {
                     "type": "Buffer", "data": "AAE="}}})
    journal({"e": "receiving", "n": 2, "t": 60})  # co002 decrypting m3: it wrote (below)
    journal({"e": "receiving", "n": 3, "t": 70})  # co001 decrypting m4: wrote nothing yet
    journal({"e": "members", "conv": group.id, "members": group.members[:2]})
    journal.close()
    with path.open("ab") as torn:
        torn.write(b'{"e":"decrypted","id":"m2"')  # the kill, mid-line

    back = read_journal(path)
    assert back.torn_tail is not None
    assert back.tally.summary() == tally.summary()
    assert back.tally.messages["m1"].plaintext == b"m:m1"
    assert back.tally.failures[0].keys == [("co001", "session", "x")]
    assert [g.members for g in back.topology.groups] == [group.members[:2]]
    assert [(p.seq, p.in_hand) for p in back.unsettled()] == [(1, False), (2, True), (3, True)]
    assert back.unsettled()[0].payload["ciphertext"] == b"\x00\x01"
    child = History()
    child.invoke(1, "co002", WRITE_KEYS, [("session", "y")], {("session", "y"): "d"},
                 at_ns=65).ok(at_ns=66)
    child.invoke(2, "co001", WRITE_KEYS, [("session", "z")], {("session", "z"): "d"},
                 at_ns=55).ok(at_ns=56)  # before its decrypt began: not that decrypt's
    committing = _committing(back, child)
    assert committing == {2}
    assert _in_flight(back, committing) == {
        "deliveries": 4, "with_the_server": 3, "in_hand": 2, "in_hand_written": 1,
        "unsent": 1, "retry_under_way": 0}


def test_an_engine_trace_becomes_history_ops_at_their_own_times() -> None:
    history, processes = History(), Processes()
    trace = [
        {"f": "get", "company": "co1", "t0": "10", "t1": "20", "outcome": "ok",
         "keys": [["session", "a"], ["session", "b"]], "result": ["d1", None]},
        {"f": "set", "company": "co1", "t0": "30", "t1": "40", "outcome": "info",
         "keys": [["session", "a"], ["pre-key", "5"]], "value": ["d2", None],
         "error": "StoreTimeout: x"},
        {"f": "save", "company": "co1", "t0": "50", "t1": "60", "outcome": "ok", "value": "c1"},
    ]
    assert record_trace(history, processes, trace) == 3
    read, write, save = history.ops()
    assert (read.f, read.invoke_ns, read.complete_ns) == (READ_KEYS, 10, 20)
    assert read.result == {("session", "a"): "d1", ("session", "b"): None}
    assert (write.f, write.outcome) == (WRITE_KEYS, "info")
    assert write.value == {("session", "a"): "d2", ("pre-key", "5"): None}
    assert (save.f, save.value) == (WRITE_CREDS, {("creds", ""): "c1"})
    assert write.process != save.process  # an info op may still land: its process is retired
    assert read.process == write.process


def _check_with(*anomalies: Anomaly) -> CheckResult:
    found: dict[str, list[Anomaly]] = {n: [] for n in ANOMALY_NAMES}
    for anomaly in anomalies:
        found[anomaly.name].append(anomaly)
    counts = {n: len(v) for n, v in found.items()}
    return CheckResult(anomalies=found, anomaly_counts=counts)


def test_failures_are_attributed_to_anomalies_on_their_keys_before_them() -> None:
    history = History(clock=iter(range(500, 10_000, 10)).__next__)
    op = history.invoke(1, "co2", READ_KEYS, [("session", "x")])
    op.ok({("session", "x"): "old"})
    key = ("co2", "session", "x")
    stale = Anomaly("stale-read", "co2", ("session", "x"), "read", op=op.index)
    failures = [
        _failure("m1", "Bad MAC", [key], at_ns=1_000),
        _failure("m0", "Bad MAC", [key], at_ns=0),  # before the anomaly: not its cause
        _failure("m2", "No session record", [("co2", "session", "y")], store_failures=1),
    ]
    result = attribute(failures, _check_with(stale), history)
    assert result["attributed"] == 2 and result["unattributed"] == 1
    assert result["by_anomaly"] == {"stale-read": 1, STORE_ERROR: 1}
    assert result["keys"] == [{"company": "co2", "key": ["session", "x"], "anomaly": "stale-read",
                               "failures": 1, "errors": {"Bad MAC": 1}}]
    causes = {e["message"]: e["cause"] for e in result["examples"]}
    assert causes["m1"]["anomaly"] == "stale-read" and causes["m0"] is None


def _item(**changes: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": "sever", "target": "resilient", "contrast": False, "gated": True,
        "companies": 4, "messages": 10, "deliveries": 12, "decrypted": 12,
        "undecryptable": {}, "undecryptable_total": 0, "undecryptable_with_new_pod": 0,
        "retries": 0, "reestablished": 0, "reestablished_by": {}, "lost": 0, "lost_by": {},
        "new_pod_ok": True, "new_pod": {"conversations": 5, "continued": 5, "failed_by": {}},
        "checker": {"valid": True}, "harness_errors": {}, "attribution": {"keys": []},
        "fault": {"met": True}, "verdict": "passed",
        "throughput": {"deliveries_per_s": 3.5,
                       "time_split": {"crypto": 0.5, "store": 0.3, "bridge": 0.2}}}
    item.update(changes)
    return item


def test_verdict_fails_on_any_damage_and_is_inconclusive_without_the_fault() -> None:
    assert verdict(_item()) == "passed"
    assert verdict(_item(fault={"met": False})) == "inconclusive"
    assert verdict(_item(fault=None)) == "passed"
    for damage in ({"undecryptable_with_new_pod": 1}, {"reestablished": 1}, {"lost": 1},
                   {"new_pod_ok": False}, {"checker": {"valid": False}},
                   {"harness_errors": {"x": 1}}, {"target_errors": ["close() hung"]}):
        assert verdict(_item(**damage)) == "failed", damage


def test_figures_are_gated_only_for_the_tested_target() -> None:
    figures = {f.name: f for f in figures_of(_item(undecryptable_with_new_pod=2))}
    undecryptable = figures["signal sever [resilient] undecryptable"]
    assert undecryptable.value == 2 and undecryptable.gate == "signal-undecryptable-max"
    assert undecryptable.gated
    assert figures["signal sever [resilient] re-established"].gate == "signal-reestablished-max"
    contrast = figures_of(_item(target="reference", contrast=True, gated=False))
    assert not any(f.gated for f in contrast)


def test_the_console_line_and_the_table_say_what_happened() -> None:
    item = _item(verdict="failed", undecryptable={"Bad MAC": 3}, undecryptable_total=3,
                 reestablished=2, new_pod_ok=False,
                 new_pod={"conversations": 5, "continued": 4, "failed_by": {"Bad MAC": 1}},
                 attribution={"keys": [{"company": "co1", "key": ["session", "a_1.0"],
                                        "anomaly": "stale-read", "failures": 3,
                                        "errors": {"Bad MAC": 3}}]})
    line = summary_line(item)
    assert line.startswith("signal sever [resilient] FAILED: 10 messages, 12 deliveries")
    assert "3 undecryptable (Bad MAC 3)" in line and "new pod FAILED 1/5 (Bad MAC 1)" in line
    assert "crypto / store / bridge 50 % / 30 % / 20 %" in line
    text = "\n".join(markdown([item, _item(target="reference", contrast=True)]))
    assert "## Signal conversations" in text and "reference *" in text
    assert "co1 session `a_1.0`: stale-read -> Bad MAC 3" in text


def test_time_split_shares_add_up() -> None:
    # 1000 ns round trip = 100 waiting for a peer + 600 in Node (400 of it in the store) + 300
    timing = EngineTiming(ops=2, rtt_ns=1000, wait_ns=100, op_ns=600, store_js_ns=400)
    node = timing.split(None)
    assert (node["crypto"], node["store"], node["bridge"]) == (0.222, 0.444, 0.333)
    bridge = timing.split(250)  # Python served the store in 250 of the 400 ns Node waited
    assert (bridge["crypto"], bridge["store"], bridge["bridge"]) == (0.222, 0.278, 0.5)
    assert bridge["ops"] == 2 and bridge["peer_wait_s"] == 0.0  # rounded to ms


def test_the_html_chart_draws_outcomes_and_shades_the_fault() -> None:
    from harness.report.html.signal_chart import signal_timeline

    item = _item(timeline={"bucket_s": 0.5, "decrypted": [4, 6, 0, 5], "failed": [0, 0, 2, 0],
                           "lost": [0, 0, 0, 1], "faults": [[0.5, 1.5]]})
    chart = signal_timeline(item, "signal-0")
    assert chart is not None and chart.title == "Signal sever [resilient]: decrypt outcomes"
    assert chart.svg.startswith("<svg") and "fault window 0.5-1.5 s" in chart.svg
    assert chart.svg.count('class="mark') >= 3  # three series drawn
    assert signal_timeline(_item(timeline={}), "x") is None
