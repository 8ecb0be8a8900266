"""The BufferJSON codec: every Baileys value round-trips exactly; every byte form decodes;
look-alikes stay objects; the writer emits only base64 Buffers, compact, Unicode unescaped;
what PostgreSQL or JSON cannot hold is refused with a message saying what to do."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fixtures.strategies import (
    baileys_values,
    creds,
    display_names,
    key_type_values,
    key_values,
    large_app_state_sync_version_values,
    unstorable_values,
)
from harness.authstate import key_types as kt
from harness.authstate.codec import decode, dumps, dumps_for_postgres, encode, loads
from harness.authstate.errors import UnsupportedValue

# --- round trips -------------------------------------------------------------------------------


@given(creds())
def test_creds_round_trip(value: dict[str, Any]) -> None:
    assert loads(dumps_for_postgres(value)) == value
    assert loads(dumps(value)) == value


@pytest.mark.parametrize("key_type", kt.KEY_TYPES)
@given(data=st.data())
def test_every_key_type_round_trips(key_type: str, data: st.DataObject) -> None:
    value = data.draw(key_values(key_type))
    assert loads(dumps_for_postgres(value)) == value


@given(key_type_values())
def test_key_batches_round_trip(batch: tuple[str, dict[str, Any]]) -> None:
    _, entries = batch
    assert loads(dumps(entries)) == entries


# Large values are built from a seeded PRNG, so they are cheap to draw; only the codec's own
# work on ~0.1-1 MB of JSON can make an example slow, which is the point of the test.
@settings(max_examples=10, suppress_health_check=[HealthCheck.too_slow])
@given(large_app_state_sync_version_values())
def test_large_app_state_versions_round_trip(value: dict[str, Any]) -> None:
    assert len(value["indexValueMap"]) >= 500
    assert loads(dumps_for_postgres(value)) == value


@given(baileys_values())
def test_postgres_text_holds_the_same_json_as_baileys_text(value: Any) -> None:
    """Same data, whichever writer path a value takes (only layout and key order may differ)."""
    assert json.loads(dumps_for_postgres(value)) == json.loads(dumps(value))


_STORABLE_CHARS = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
_FIELD_NAMES = st.one_of(st.sampled_from(["public", "private", "pubKey", "privKey", "_x", "a1"]),
                         st.text(_STORABLE_CHARS, max_size=8))


@example({"public": b"", "private": b"\x00" * 32})
@example({})
@example({'a"b': b"1", "\\": b"2", "1": b"3", "ä": b"4", "-x": b"5"})
@given(st.dictionaries(_FIELD_NAMES, st.binary(max_size=64), max_size=4))
def test_objects_of_buffers_take_a_shortcut_to_the_same_json(value: dict[str, bytes]) -> None:
    """Key pairs (every pre-key) have their own writer: it must say exactly what the general one
    says, including for names it does not handle itself (quotes, digits, non-ASCII)."""
    text = dumps_for_postgres(value)
    assert json.loads(text) == json.loads(dumps(value))
    assert loads(text) == value


@given(baileys_values())
def test_generic_values_round_trip(value: Any) -> None:
    assert loads(dumps(value)) == value
    assert decode(encode(value)) == value


# --- the three byte forms ----------------------------------------------------------------------


def _array_form(data: bytes) -> str:
    return json.dumps({"type": "Buffer", "data": list(data)})


def _numeric_key_form(data: bytes, order: list[int] | None = None) -> str:
    order = list(range(len(data))) if order is None else order
    return json.dumps({str(i): data[i] for i in order})


@given(st.binary(min_size=1, max_size=300), st.randoms(use_true_random=False))
def test_all_three_byte_forms_decode_to_the_same_bytes(data: bytes, rnd: Any) -> None:
    order = list(range(len(data)))
    rnd.shuffle(order)  # insertion order does not matter: V8 lists index keys ascending
    forms = [json.dumps({"type": "Buffer", "data": base64.b64encode(data).decode()}),
             _array_form(data), _numeric_key_form(data), _numeric_key_form(data, order)]
    for form in forms:
        assert loads(form) == data
        assert loads(f'{{"k":[{form}]}}') == {"k": [data]}


def test_empty_bytes_decode_from_base64_and_array_forms() -> None:
    assert loads('{"type":"Buffer","data":""}') == b""
    assert loads('{"type":"Buffer","data":[]}') == b""
    assert loads("{}") == {}  # an empty object has no numeric keys: it stays an object


def _to_uint8(number: float) -> int:
    """ECMAScript ToUint8 on a JS number (a double): the model our reader must follow."""
    number = float(number) if abs(number) > 2**53 else number
    if isinstance(number, float) and not math.isfinite(number):
        return 0
    return int(number) % 256


_js_numbers = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=False,
                                                                allow_infinity=False))
_index_keys = st.integers(0, 2**32 + 5).map(str)
_numeric_but_not_index = st.sampled_from(["01", "-1", "+2", " 3", "\ufeff4", "1e3", "5a",
                                          "4294967295", "0x10", "\u20287"])


@given(st.dictionaries(st.one_of(_index_keys, _numeric_but_not_index), _js_numbers,
                       min_size=1, max_size=20))
@example({"4294967295": 1, "4294967294": 2, "0": 3})
@example({"2": 300, "1": -1, "0": 1.7, "3": -1.7, "4": 18446744073709551617})
def test_numeric_key_form_follows_object_values_order_and_to_uint8(obj: dict[str, Any]) -> None:
    index_keys = sorted((k for k in obj if k.isascii() and k.isdigit() and str(int(k)) == k
                         and int(k) < 2**32 - 1), key=int)
    others = [k for k in obj if k not in index_keys]
    expected = bytes(_to_uint8(obj[k]) for k in index_keys + others)
    assert loads(json.dumps(obj)) == expected


@pytest.mark.parametrize("text", [
    '{"0":1,"a":2}', "{}", '{"0":"x"}', '{"0":true}', '{"0":null}', '{"0":[1]}', '{"0":{}}',
    '{"":1}', '{"a0":1}', '{"Infinity":1}', '{"NaN":1}', '{"٣":1}', '{"\\u001c1":1}',
    '{"type":"Buffer"}', '{"type":"buffer","data":"AQ=="}', '{"type":"Buffer","data":null}',
    '{"type":"Buffer","data":{"x":1}}', '{"type":"Buffer","data":[1,"2"]}', '{"data":"AQ=="}',
])
def test_look_alikes_are_not_revived(text: str) -> None:
    result = loads(text)
    assert result == json.loads(text)
    assert not isinstance(result, bytes)


# --- what the writer emits ---------------------------------------------------------------------


def _count_bytes(value: Any) -> int:
    if isinstance(value, bytes):
        return 1
    if isinstance(value, dict):
        return sum(_count_bytes(v) for v in value.values())
    if isinstance(value, list):
        return sum(_count_bytes(v) for v in value)
    return 0


def _buffer_objects(structure: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(structure, dict):
        if structure.get("type") == "Buffer":
            found.append(structure)
        for v in structure.values():
            found += _buffer_objects(v)
    elif isinstance(structure, list):
        for v in structure:
            found += _buffer_objects(v)
    return found


def _numeric_key_objects(structure: Any) -> int:
    if isinstance(structure, dict):
        own = int(bool(structure) and all(k[:1].isdigit() for k in structure)
                  and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                          for v in structure.values()))
        return own + sum(_numeric_key_objects(v) for v in structure.values())
    if isinstance(structure, list):
        return sum(_numeric_key_objects(v) for v in structure)
    return 0


@given(st.one_of(baileys_values(), creds(), key_type_values().map(lambda b: b[1])))
def test_writer_emits_only_canonical_base64_buffers(value: Any) -> None:
    plain = json.loads(dumps(value))  # no reviver: what is literally in the text
    buffers = _buffer_objects(plain)
    assert len(buffers) == _count_bytes(value)
    for buf in buffers:
        assert list(buf) == ["type", "data"] and isinstance(buf["data"], str)
        assert base64.b64encode(base64.b64decode(buf["data"], validate=True)).decode() == \
            buf["data"]
    assert _numeric_key_objects(plain) == 0


@given(st.one_of(baileys_values(), creds()))
def test_text_is_compact_and_stable(value: Any) -> None:
    text = dumps(value)
    assert text == json.dumps(json.loads(text), separators=(",", ":"), ensure_ascii=False)


@given(display_names())
def test_unicode_is_written_unescaped(name: str) -> None:
    text = dumps({"name": name})
    for ch in set(name):
        if ord(ch) > 0x7F:  # emoji, RTL, combining marks appear as themselves, not \\u escapes
            assert ch in text
    assert loads(text) == {"name": name}


def test_text_matches_v8_for_numbers_and_key_order() -> None:
    assert dumps({"b": 1.0, "10": -0.0, "2": 0.5, "a": [2.0**52]}) == \
        '{"2":0.5,"10":0,"b":1,"a":[4503599627370496]}'


# --- refusals ----------------------------------------------------------------------------------


@given(unstorable_values())
def test_postgres_refuses_nul_and_lone_surrogates_saying_what_to_do(value: Any) -> None:
    with pytest.raises(UnsupportedValue) as info:
        dumps_for_postgres(value)
    assert "NUL" in info.value.message or "surrogate" in info.value.message
    assert info.value.hint
    assert loads(dumps(value)) == value  # plain JSON text can carry them (escaped, as V8 does)


@pytest.mark.parametrize("value", ["\\u0000", "\\\\u0000", "C:\\ud800 folder", {"\\u0000": 1}])
def test_escaped_backslashes_are_not_mistaken_for_nul(value: Any) -> None:
    assert loads(dumps_for_postgres(value)) == value


@pytest.mark.parametrize("value", [
    (1, 2), {"a": (1,)}, {1, 2}, frozenset(), object(), float("nan"), float("inf"),
    [float("-inf")], {1: "a"}, {None: 1}, {"a": {True: 1}}, 1j, decimal.Decimal("1.5"),
    dt.datetime(2026, 1, 1), [b"ok", {"x": object()}],
], ids=repr)
def test_non_json_values_are_refused(value: Any) -> None:
    with pytest.raises(UnsupportedValue):
        dumps(value)


def test_cycles_are_refused() -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(UnsupportedValue, match="refers to itself"):
        dumps(cyclic)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a":-Infinity}', "{", '{"a":1,}', ""])
def test_reader_refuses_what_json_parse_refuses(text: str) -> None:
    with pytest.raises(UnsupportedValue):
        loads(text)
