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


def _bounds(write: PreparedKeyWrite) -> list[tuple[int, int]]:
    return [(s.start, s.stop) for s in write.slices]


def test_a_large_write_encodes_its_head_first_and_the_rest_by_slice() -> None:
    write = PreparedKeyWrite({"pre-key": {str(i): PRE_KEY for i in range(812)}},
                             defer_encoding=True)
    assert _bounds(write) == [(0, 162), (162, 812)]
    assert not write.fully_encoded
    assert isinstance(write.upsert_values[161], str) and write.upsert_values[162] == PRE_KEY
    with pytest.raises(AssertionError, match="encode a slice"):
        write.upsert_statement("co", slice(162, 812))
    write.encode(slice(162, 812))
    assert write.fully_encoded and all(isinstance(v, str) for v in write.upsert_values)


def test_slices_respect_the_batch_size_and_small_writes_encode_at_once() -> None:
    big = {str(i): PRE_KEY for i in range(2500)}
    assert _bounds(PreparedKeyWrite({"pre-key": big}, defer_encoding=True)) == [
        (0, 500), (500, 1500), (1500, 2500)]
    assert _bounds(PreparedKeyWrite({"pre-key": big})) == [(0, 1000), (1000, 2000), (2000, 2500)]
    small = PreparedKeyWrite({"pre-key": {str(i): PRE_KEY for i in range(255)}},
                             defer_encoding=True)
    assert small.fully_encoded and _bounds(small) == [(0, 255)]


def test_statements_encode_everything_before_returning() -> None:
    write = PreparedKeyWrite({"pre-key": {str(i): PRE_KEY for i in range(812)},
                              "session": {"s": None}}, defer_encoding=True)
    statements = write.statements("co")
    assert write.fully_encoded and len(statements) == 3  # head, rest, the delete
