"""Checker: one minimal history per anomaly, and the look-alikes that must stay valid."""

from __future__ import annotations

import json

from metrics_testkit import Builder

from harness.metrics.checker import check
from harness.metrics.history import CREDS

A = ("session", "a")
B = ("session", "b")
P1 = ("pre-key", "1")
P2 = ("pre-key", "2")
C = "acme"


def names(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {name for name, count in result.anomaly_counts.items() if count}


# -- lost ----------------------------------------------------------------------------------

def test_final_holding_an_older_acked_value_is_lost() -> None:
    b = Builder()
    w1 = b.write(C, {A: "d1"}, 0, 10)
    w2 = b.write(C, {A: "d2"}, 20, 30)
    result = check(b.history, {(C, A): "d1"})
    assert names(result) == {"lost"}
    assert result.lost_writes == 1 and result.acked_writes == 2 and not result.valid
    (example,) = result.anomalies["lost"]
    assert (example.op, example.expected, example.found, example.found_op) == (w2, ("d2",),
                                                                              "d1", w1)
    assert example.note == "1 acknowledged write(s) missing: final is an older write's value"


def test_final_absent_after_an_acked_upsert_is_lost() -> None:
    b = Builder()
    b.write(C, {A: "d1"}, 0, 10)
    assert names(check(b.history, {(C, A): None})) == {"lost"}


def test_written_key_missing_from_the_final_read_counts_as_absent() -> None:
    b = Builder()
    b.write(C, {A: "d1", B: "e1"}, 0, 10)
    result = check(b.history, {(C, A): "d1"})
    assert names(result) == {"lost"} and result.lost_keys == 1 and result.lost_writes == 1


def test_info_write_is_neither_lost_nor_safe() -> None:
    b = Builder()
    b.write(C, {A: "d1"}, 0, 10)
    b.write(C, {A: "d2"}, 20, 30, "info")
    b.write(C, {A: "d3"}, 40, None, None)  # never completed: the recorder died
    for final in ("d1", "d2", "d3"):
        result = check(b.history, {(C, A): final})
        assert result.valid, final
        assert result.indeterminate_writes == 2 and result.lost_writes == 0
    assert check(b.history, {(C, A): "d1"}).recovered_writes == 0


def test_info_write_found_in_the_final_state_is_recovered() -> None:
    b = Builder()
    b.write(C, {A: "d1"}, 0, 10, "info")
    result = check(b.history, {(C, A): "d1"})
    assert result.valid and result.recovered_writes == 1 and result.indeterminate_writes == 1


def test_superseded_writes_are_fine_once_the_latest_is_final() -> None:
    b = Builder()
    b.write(C, {A: "d1"}, 0, 10)
    b.write(C, {A: "d2"}, 20, 30)
    b.write(C, {A: "d3"}, 40, 50)
    b.read(C, {A: "d3"}, 60, 70)
    result = check(b.history, {(C, A): "d3"})
    assert result.valid and result.acked_writes == 3 and result.reads == 1


def test_concurrent_writers_may_leave_either_value() -> None:
    b = Builder()  # two store instances writing the same key at once
    b.write(C, {A: "from-1"}, 0, 20)
    b.write(C, {A: "from-2"}, 10, 30)
    assert check(b.history, {(C, A): "from-1"}).valid
    assert check(b.history, {(C, A): "from-2"}).valid
    b.read(C, {A: "from-1"}, 40, 45)
    b.read(C, {A: "from-2"}, 46, 50)  # concurrent acked writes both stay allowed
    assert check(b.history, {(C, A): "from-2"}).valid
    b.write(C, {A: "later"}, 60, 70)  # both superseded now
    assert names(check(b.history, {(C, A): "from-1"})) == {"lost"}


def test_replay_over_a_newer_row_from_another_writer_is_lost() -> None:
    b = Builder()
    b.write(C, {A: "journaled"}, 0, 5, source="journal")  # instance 1, acked from its journal
    newer = b.write(C, {A: "newer"}, 20, 25)              # instance 2, after the outage
    result = check(b.history, {(C, A): "journaled"})      # instance 1's replay overwrote it
    assert names(result) == {"lost"} and result.anomalies["lost"][0].op == newer


def test_failed_write_never_counts_as_acked_or_lost() -> None:
    b = Builder()
    b.write(C, {A: "d1"}, 0, 10)
    b.write(C, {A: "d2"}, 20, 30, "fail")
    result = check(b.history, {(C, A): "d1"})
    assert result.valid and result.failed_writes == 1 and result.acked_writes == 1


# -- deletes / resurrected -----------------------------------------------------------------

def test_acked_delete_then_absent_is_fine() -> None:
    b = Builder()
    b.write(C, {P1: "k1"}, 0, 10)
    b.write(C, {P1: None}, 20, 30)
    b.read(C, {P1: None}, 40, 50)
    assert check(b.history, {(C, P1): None}).valid
    assert check(b.history, {}).valid  # absent keys may be omitted


def test_undone_delete_is_resurrected() -> None:
    b = Builder()
    b.write(C, {P1: "k1"}, 0, 10)
    delete = b.write(C, {P1: None}, 20, 30)
    result = check(b.history, {(C, P1): "k1"})
    assert names(result) == {"resurrected"}
    assert result.lost_writes == 0
    (example,) = result.anomalies["resurrected"]
    assert example.op == delete and example.found == "k1" and example.expected == (None,)


def test_delete_concurrent_with_an_upsert_allows_both_outcomes() -> None:
    b = Builder()
    b.write(C, {P1: "k1"}, 0, 10)
    b.write(C, {P1: None}, 20, 40)
    b.write(C, {P1: "k2"}, 30, 50)
    assert check(b.history, {(C, P1): None}).valid
    assert check(b.history, {(C, P1): "k2"}).valid
    assert names(check(b.history, {(C, P1): "k1"})) == {"lost"}


# -- stale reads ---------------------------------------------------------------------------

def test_read_of_a_superseded_value_is_stale() -> None:
    b = Builder()
    w1 = b.write(C, {A: "d1"}, 0, 10)
    b.write(C, {A: "d2"}, 20, 30)
    read = b.read(C, {A: "d1"}, 40, 50, source="cache")
    result = check(b.history, {(C, A): "d2"})
    assert names(result) == {"stale-read"} and result.stale_reads == 1
    (example,) = result.anomalies["stale-read"]
    assert (example.op, example.found, example.found_op, example.expected) == (read, "d1", w1,
                                                                              ("d2",))


def test_absent_after_an_acked_write_is_a_stale_read() -> None:
    b = Builder()
    b.write(C, {A: "d1"}, 0, 10)
    b.read(C, {A: None}, 20, 30)
    assert names(check(b.history, {(C, A): "d1"})) == {"stale-read"}


def test_read_concurrent_with_a_write_may_see_either() -> None:
    b = Builder()
    b.write(C, {A: "d1"}, 0, 10)
    b.write(C, {A: "d2"}, 20, 40)
    b.read(C, {A: "d1"}, 25, 35)  # inside the write
    b.read(C, {A: "d2"}, 25, 35)
    b.read(C, {A: "d1"}, 15, 50)  # spans the write
    b.read(C, {A: "d2"}, 15, 50)
    result = check(b.history, {(C, A): "d2"})
    assert result.valid and result.reads == 4


def test_read_before_any_ack_may_see_absent() -> None:
    b = Builder()
    b.read(C, {A: None}, 0, 5)    # before the write
    b.read(C, {A: None}, 8, 15)   # during it
    b.write(C, {A: "d1"}, 10, 20)
    assert check(b.history, {(C, A): "d1"}).valid
    b.read(C, {A: None}, 25, 30)  # after the ack: stale
    assert names(check(b.history, {(C, A): "d1"})) == {"stale-read"}


def test_read_may_see_an_info_write_or_what_was_before_it() -> None:
    b = Builder()
    b.write(C, {A: "d0"}, 0, 5)
    b.write(C, {A: "d1"}, 10, 20, "info")
    b.read(C, {A: "d0"}, 30, 40)
    b.read(C, {A: "d1"}, 50, 60)
    result = check(b.history, {(C, A): "d1"})
    assert result.valid and result.recovered_writes == 1


def test_one_read_with_two_stale_keys_counts_once() -> None:
    b = Builder()
    b.write(C, {A: "a1", B: "b1"}, 0, 10)
    b.write(C, {A: "a2", B: "b2"}, 20, 30)
    b.read(C, {A: "a1", B: "b1"}, 40, 50)
    result = check(b.history, {(C, A): "a2", (C, B): "b2"})
    assert result.stale_reads == 1 and result.anomaly_counts["stale-read"] == 2


def test_keys_a_read_asked_for_and_did_not_get_are_absent() -> None:
    b = Builder()
    b.write(C, {A: "d1"}, 0, 10)
    b.read(C, {}, 20, 30, keys=[A])  # the store's get omitted the id
    assert names(check(b.history, {(C, A): "d1"})) == {"stale-read"}


def test_failed_and_info_reads_are_not_judged() -> None:
    b = Builder()
    b.write(C, {A: "d1"}, 0, 10)
    b.read(C, None, 20, 30, "fail", keys=[A])
    b.read(C, None, 20, 30, "info", keys=[A])
    result = check(b.history, {(C, A): "d1"})
    assert result.valid and result.failed_reads == 1 and result.indeterminate_reads == 1


# -- unexpected ----------------------------------------------------------------------------

def test_read_of_a_value_never_written_is_unexpected() -> None:
    b = Builder()
    b.write(C, {A: "d1"}, 0, 10)
    b.read(C, {A: "zz"}, 20, 30)
    result = check(b.history, {(C, A): "d1"})
    assert names(result) == {"unexpected"}
    assert result.anomalies["unexpected"][0].note == "never written"


def test_read_of_a_failed_writes_value_is_unexpected() -> None:
    b = Builder()  # the store cached before the database write and kept it after the failure
    failed = b.write(C, {A: "d1"}, 0, 10, "fail")
    b.read(C, {A: "d1"}, 20, 30, source="cache")
    result = check(b.history, {})
    assert names(result) == {"unexpected"}
    example = result.anomalies["unexpected"][0]
    assert example.found_op == failed and "aborted" in example.note


def test_read_of_a_value_written_only_later_is_unexpected() -> None:
    b = Builder()
    b.read(C, {A: "d1"}, 0, 5)
    b.write(C, {A: "d1"}, 10, 20)
    assert names(check(b.history, {(C, A): "d1"})) == {"unexpected"}


def test_final_holding_a_failed_writes_value_is_unexpected() -> None:
    b = Builder()
    b.write(C, {A: "d1"}, 0, 10, "fail")
    result = check(b.history, {(C, A): "d1"})
    assert names(result) == {"unexpected"} and result.lost_writes == 0


def test_final_garbage_over_an_acked_write_is_unexpected_and_lost() -> None:
    b = Builder()
    b.write(C, {A: "d1"}, 0, 10)
    result = check(b.history, {(C, A): "zz"})
    assert names(result) == {"unexpected", "lost"} and result.lost_writes == 1


def test_final_value_for_a_key_never_written_is_unexpected() -> None:
    assert names(check(Builder().history, {(C, A): "zz"})) == {"unexpected"}


# -- creds ---------------------------------------------------------------------------------

def test_fresh_creds_read_after_paired_creds_were_acked_is_creds_reset() -> None:
    b = Builder()
    b.creds_write(C, "paired-1", 0, 10)
    read = b.creds_read(C, "fresh-x", 20, 30, meta={"fresh": True})
    result = check(b.history, {(C, CREDS): "paired-1"})
    assert names(result) == {"creds-reset"}
    assert result.anomalies["creds-reset"][0].op == read


def test_fresh_creds_before_pairing_is_fine() -> None:
    b = Builder()
    b.creds_read(C, "fresh-x", 0, 5, meta={"fresh": True})
    b.creds_read(C, "fresh-y", 8, 15, meta={"fresh": True})  # concurrent with the save
    b.creds_write(C, "paired-1", 10, 20)
    b.creds_read(C, "paired-1", 30, 40, source="cache")
    assert check(b.history, {(C, CREDS): "paired-1"}).valid


def test_fresh_creds_written_by_the_driver_are_not_paired() -> None:
    b = Builder()
    b.creds_write(C, "fresh-1", 0, 10, meta={"fresh": True})
    b.creds_read(C, "fresh-2", 20, 30, meta={"fresh": True})
    assert check(b.history, {(C, CREDS): "fresh-1"}).valid


def test_fresh_creds_in_postgresql_after_pairing_is_creds_reset() -> None:
    b = Builder()
    b.creds_write(C, "paired-1", 0, 10)
    result = check(b.history, {(C, CREDS): "fresh-x"},
                   final_meta={(C, CREDS): {"fresh": True}})
    assert names(result) == {"creds-reset", "lost"}  # the acked creds are gone too
    assert result.anomaly_counts["unexpected"] == 0


# -- torn writes ---------------------------------------------------------------------------

def _prekeys_then_info_write(values: dict) -> Builder:  # type: ignore[type-arg]
    b = Builder()
    b.write(C, {P1: "old-1", P2: "old-2"}, 0, 10)
    b.write(C, values, 20, 30, "info")
    return b


def test_info_multi_key_write_applied_in_part_is_torn() -> None:
    b = _prekeys_then_info_write({P1: "new-1", P2: "new-2"})
    result = check(b.history, {(C, P1): "new-1", (C, P2): "old-2"})
    assert names(result) == {"torn"}
    detail = result.anomalies["torn"][0].detail
    assert detail["applied"] == [list(P1)] and detail["not_applied"] == [list(P2)]
    assert result.recovered_writes == 1


def test_info_multi_key_write_applied_whole_or_not_at_all_is_fine() -> None:
    b = _prekeys_then_info_write({P1: "new-1", P2: "new-2"})
    assert check(b.history, {(C, P1): "new-1", (C, P2): "new-2"}).valid
    assert check(b.history, {(C, P1): "old-1", (C, P2): "old-2"}).valid


def test_info_multi_key_delete_applied_in_part_is_torn() -> None:
    b = _prekeys_then_info_write({P1: None, P2: None})
    assert names(check(b.history, {(C, P1): None, (C, P2): "old-2"})) == {"torn"}


def test_keys_written_again_later_are_not_judged_for_tearing() -> None:
    b = _prekeys_then_info_write({P1: "new-1", P2: "new-2"})
    b.write(C, {P2: "newest-2"}, 40, 50)
    assert check(b.history, {(C, P1): "new-1", (C, P2): "newest-2"}).valid


def test_deletes_of_keys_that_may_never_have_existed_are_not_judged() -> None:
    b = Builder()
    b.write(C, {P1: "old-1"}, 0, 10)
    b.write(C, {P1: None, P2: None}, 20, 30, "info")
    assert check(b.history, {(C, P1): "old-1"}).valid


def test_failed_multi_key_write_applied_in_part_is_torn_and_unexpected() -> None:
    b = Builder()
    b.write(C, {P1: "old-1", P2: "old-2"}, 0, 10)
    b.write(C, {P1: "new-1", P2: "new-2"}, 20, 30, "fail")
    result = check(b.history, {(C, P1): "new-1", (C, P2): "old-2"})
    assert names(result) == {"torn", "unexpected", "lost"}


# -- result shape --------------------------------------------------------------------------

def test_summary_is_small_json_with_digests_only() -> None:
    b = Builder()
    for i in range(7):
        key = ("session", str(i))
        b.write(C, {key: f"d{i}"}, 0, 10)
    result = check(b.history, {})
    summary = result.summary()
    json.dumps(summary)
    assert summary["anomalies"] == {"lost": 7} and summary["lost_writes"] == 7
    assert len(summary["examples"]["lost"]) == 5 and summary["valid"] is False
    assert summary["examples"]["lost"][0]["expected"] == ["d0"]


def test_examples_are_capped_but_counts_exact() -> None:
    b = Builder()
    for i in range(30):
        b.write(C, {("session", str(i)): f"d{i}"}, 0, 10)
    result = check(b.history, {}, max_examples=4)
    assert len(result.anomalies["lost"]) == 4 and result.anomaly_counts["lost"] == 30


def test_companies_are_separate() -> None:
    b = Builder()
    b.write("acme", {A: "d1"}, 0, 10)
    b.read("other", {A: "d1"}, 20, 30)  # another company's value
    result = check(b.history, {("acme", A): "d1"})
    assert names(result) == {"unexpected"}
