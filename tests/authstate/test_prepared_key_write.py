"""`keys.set` preparation: its fast paths give the same verdicts as the full checks."""

from __future__ import annotations

import math

import pytest

from harness.authstate.errors import InvalidKey
from harness.authstate.key_types import is_js_falsy, validate_key_id
from harness.authstate.store import PreparedKeyWrite

PRE_KEY = {"public": b"\x01" * 32, "private": b"\x02" * 32}


class StrId(str):
    """A str subclass: not the plain-str fast path, still a valid id."""


@pytest.mark.parametrize("key_id", ["a\x00b", "\x00", "x\ud800", "\udfff", "a" * 1025, 1, None,
                                    b"1"])
def test_ids_the_full_check_refuses_are_refused(key_id: object) -> None:
    with pytest.raises(InvalidKey):
        validate_key_id(key_id)
    with pytest.raises(InvalidKey):
        PreparedKeyWrite({"pre-key": {"1": PRE_KEY, key_id: PRE_KEY}})  # type: ignore[dict-item]


@pytest.mark.parametrize("key_id", ["1", "a" * 1024, "5511999999999@s.whatsapp.net/1:2+=.",
                                    "çã", "😀", StrId("7")])
def test_ids_the_full_check_accepts_are_written(key_id: str) -> None:
    write = PreparedKeyWrite({"pre-key": {key_id: PRE_KEY}})
    assert write.upsert_ids == [key_id] and not write.delete_ids


@pytest.mark.parametrize("value", [None, False, 0, 0.0, -0.0, math.nan, "", {}, [], b"", True,
                                   1, "x", PRE_KEY])
def test_a_value_is_deleted_exactly_when_js_would_call_it_falsy(value: object) -> None:
    write = PreparedKeyWrite({"session": {"s": value}})
    assert (write.delete_ids == ["s"]) is is_js_falsy(value)
    assert (write.upsert_ids == ["s"]) is not is_js_falsy(value)


def test_large_writes_are_cut_into_batches_and_deletes_ride_in_the_first() -> None:
    write = PreparedKeyWrite({"pre-key": {f"{i:04d}": PRE_KEY for i in range(2500)},
                              "session": {"s": None}})
    assert [(b.start, b.stop) for b in write.batches] == [(0, 1000), (1000, 2000), (2000, 2500)]
    statements = write.statements("co")
    assert len(statements) == 3 and write.deletes
    assert ["DELETE" in query for query, _ in statements] == [True, False, False]
    assert all(isinstance(v, str) for v in write.upsert_values)  # encoded before any I/O


def test_batches_of_several_types_carry_each_row_type() -> None:
    write = PreparedKeyWrite({"session": {"s": {"a": 1}}, "pre-key": {"1": PRE_KEY}})
    [(sql, args)] = write.statements("co")
    assert "$5::int4[]" in sql and args[1] == ["pre-key", "session"]
