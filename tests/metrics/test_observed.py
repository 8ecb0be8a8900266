"""Judging from outside: durability, observed MTTD / RTO, late writes, torn reads, hangs.

Synthetic histories (times in ms) and observer reads: each test builds exactly the situation a
store that lies about itself would produce, and checks the judge is not fooled.
"""

from __future__ import annotations

import pytest
from metrics_testkit import Builder, ms

from harness.metrics.checker import check
from harness.metrics.durability import Durability
from harness.metrics.observations import Group, GroupSample, Observations
from harness.metrics.observed_recovery import observed_recovery
from harness.metrics.recovery import recovery

K = ("session", "a")
K2 = ("session", "b")
SEVER = [("sever", ms(1000), ms(2000))]


def seen(obs: Observations, at: float, values: dict, company: str = "c") -> None:
    """One observer round that started at `at` ms and took 5 ms."""
    obs.record(ms(at), ms(at + 5), {(company, k): v for k, v in values.items()})


def write_behind_that_lies() -> tuple[Builder, Observations]:
    """Acks every write from memory, says it came from "db", flushes only at 3500 ms."""
    b, obs = Builder(), Observations()
    b.write("c", {K: "v0"}, 100, 110, source="db")
    seen(obs, 120, {K: "v0"})                     # durable before the fault
    b.write("c", {K: "v1"}, 1200, 1201, source="db")  # acked from memory, claims the db
    seen(obs, 1300, {K: "v0"})
    b.write("c", {K: "v2"}, 2100, 2101, source="db")  # first write after the clear
    for t in range(2200, 3500, 100):
        seen(obs, t, {K: "v0"})                   # nothing reached PostgreSQL yet
    seen(obs, 3500, {K: "v2"})                    # the flush, at last
    return b, obs


def test_write_behind_store_that_lies_gets_its_true_rto() -> None:
    b, obs = write_behind_that_lies()
    durability = Durability(b.history.ops(), obs)
    observed = observed_recovery(b.history, SEVER, durability, deadline_s=2.0)
    (row,) = observed.per_company
    assert row.rto_s == pytest.approx(1.505)  # clear at 2000 -> v2 seen at 3505
    reported = recovery(b.history, SEVER)
    assert reported.per_company[0].rto_s == pytest.approx(0.101)  # its own word: ~0.1 s


def test_acknowledged_before_durable_is_seen() -> None:
    b, obs = write_behind_that_lies()
    durability = Durability(b.history.ops(), obs)
    v1 = b.history.ops()[1]
    assert durability.acked_before_durable(v1.index) == ms(1300)
    assert durability.durable_ns(v1.index) == ms(3505)  # superseded by v2: its turn came


def test_a_write_never_seen_durable_means_not_recovered() -> None:
    b, obs = Builder(), Observations()
    b.write("c", {K: "v1"}, 1200, 1201)             # acked during the fault, then lost
    b.write("c", {K2: "w1"}, 2100, 2110)
    seen(obs, 2200, {K: None, K2: "w1"})
    durability = Durability(b.history.ops(), obs)
    (row,) = observed_recovery(b.history, SEVER, durability, deadline_s=2.0).per_company
    assert row.rto_s is None


def test_mttd_counts_a_call_in_flight_at_injection_that_runs_past_the_deadline() -> None:
    b, obs = Builder(), Observations()
    b.read("c", {K: "v0"}, 900, 4000)               # hangs across the injection
    durability = Durability(b.history.ops(), obs)
    (row,) = observed_recovery(b.history, SEVER, durability, deadline_s=2.0).per_company
    assert row.detected_by == "slow"
    assert row.mttd_s == pytest.approx(1.9)         # 900 + 2000 - 1000


def test_answer_while_the_path_is_cut_is_detection() -> None:
    b, obs = Builder(), Observations()
    b.read("c", {K: "v0"}, 1100, 1101, source="db")  # says db; the path was cut at 1050
    durability = Durability(b.history.ops(), obs)
    (row,) = observed_recovery(b.history, SEVER, durability, deadline_s=2.0,
                               cut_from_ns={0: ms(1050)}).per_company
    assert (row.detected_by, row.mttd_s) == ("no-database", pytest.approx(0.101))


def test_a_fault_the_callers_never_saw_is_masked_not_missing() -> None:
    b, obs = Builder(), Observations()
    b.write("c", {K: "v0"}, 500, 510)
    b.write("c", {K: "v1"}, 1500, 1510)             # an inline retry hid the fault
    b.write("c", {K: "v2"}, 2100, 2110)
    for t, v in ((520, "v0"), (1520, "v1"), (2120, "v2")):
        seen(obs, t, {K: v})
    durability = Durability(b.history.ops(), obs)
    result = observed_recovery(b.history, SEVER, durability, deadline_s=2.0)
    (row,) = result.per_company
    assert row.masked and row.mttd_s is None and row.rto_s == pytest.approx(0.125)
    assert result.values("mttd_s") == []  # masked is not a missing value
    assert result.masked == 1


def test_journaled_acks_after_writing_through_are_detection() -> None:
    b, obs = Builder(), Observations()
    b.write("c", {K: "v0"}, 500, 510)
    seen(obs, 520, {K: "v0"})                       # wrote through before the fault
    b.write("c", {K: "v1"}, 1200, 1201)             # acked from the journal
    seen(obs, 1300, {K: "v0"})
    seen(obs, 2050, {K: "v1"})
    b.write("c", {K: "v2"}, 2100, 2110)
    seen(obs, 2150, {K: "v2"})
    durability = Durability(b.history.ops(), obs)
    (row,) = observed_recovery(b.history, SEVER, durability, deadline_s=2.0).per_company
    assert (row.detected_by, row.mttd_s) == ("acked-before-durable", pytest.approx(0.201))


def test_late_write_an_old_indeterminate_value_after_a_newer_durable_one() -> None:
    b, obs = Builder(), Observations()
    b.write("c", {K: "old"}, 1000, 1100, "info")    # cut mid-commit: may land
    b.write("c", {K: "new"}, 1200, 1210)
    seen(obs, 1300, {K: "new"})
    seen(obs, 1400, {K: "old"})                     # the old session came back
    durability = Durability(b.history.ops(), obs)
    result = check(b.history, {("c", K): "old"}, durability=durability)
    assert result.anomaly_counts["late-write"] == 1
    example = result.anomalies["late-write"][0]
    assert example.found_op == b.history.ops()[0].index


def test_an_indeterminate_write_landing_before_the_newer_one_is_fine() -> None:
    b, obs = Builder(), Observations()
    b.write("c", {K: "old"}, 1000, 1100, "info")
    seen(obs, 1150, {K: "old"})
    b.write("c", {K: "new"}, 1200, 1210)
    seen(obs, 1300, {K: "new"})
    durability = Durability(b.history.ops(), obs)
    assert check(b.history, {("c", K): "new"}, durability=durability).valid


def test_torn_read_of_a_watched_group_even_when_acknowledged() -> None:
    b, obs = Builder(), Observations()
    keys = {("pre-key", str(i)): f"p{i}" for i in range(1, 9)}
    op = b.write("c", keys, 1000, 1300)
    group = obs.group(Group("bulk", "c", keys, op))
    group.samples = [GroupSample(ms(1100), ms(1105), 0, 8), GroupSample(ms(1200), ms(1205), 3, 8),
                     GroupSample(ms(1400), ms(1405), 8, 8)]
    durability = Durability(b.history.ops(), obs)
    result = check(b.history, {("c", k): v for k, v in keys.items()}, durability=durability)
    assert result.anomaly_counts["torn"] == 1
    assert "3 of 8" in result.anomalies["torn"][0].note


def test_a_call_past_the_harness_deadline_is_a_hang_whatever_the_store_says() -> None:
    b = Builder()
    b.read("c", {K: None}, 1000, 3600)              # the store's own deadline was 30 s
    result = check(b.history, {}, hang_after_s=2.5)
    assert result.anomaly_counts["hang"] == 1


def test_wrong_type_is_named() -> None:
    b = Builder()
    b.write("c", {K: "bytes-digest"}, 100, 110)
    b.read("c", {K: "buffer-object-digest"}, 200, 210,
           meta={"forms": [["session", "a", "bytes-digest", ["Buffer-object"]]]})
    result = check(b.history, {("c", K): "bytes-digest"})
    (example,) = result.anomalies["unexpected"]
    assert "Buffer-object" in example.note and example.found_op == 0
