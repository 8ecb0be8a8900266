"""Key types: origin-system TTLs, what ids/types are accepted, and Baileys' falsy-means-delete."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fixtures.strategies import edge_key_ids, key_ids
from harness.authstate import key_types as kt
from harness.authstate.errors import AuthStateError, InvalidKey

DAY = 86_400


def test_all_ten_v7_types_are_named() -> None:
    assert set(kt.KEY_TYPES) == {
        "pre-key", "session", "sender-key", "sender-key-memory", "app-state-sync-key",
        "app-state-sync-version", "lid-mapping", "device-list", "tctoken", "identity-key"}


@pytest.mark.parametrize("key_type", ["lid-mapping", "pre-key", "session", "sender-key"])
def test_short_lived_types_expire_after_7_days(key_type: str) -> None:
    assert kt.ttl_seconds(key_type) == 7 * DAY


@pytest.mark.parametrize("key_type", ["sender-key-memory", "app-state-sync-key",
                                      "app-state-sync-version", "device-list", "tctoken",
                                      "identity-key", "some-future-type"])
def test_other_and_unknown_types_expire_after_14_days(key_type: str) -> None:
    assert kt.ttl_seconds(key_type) == 14 * DAY


@pytest.mark.parametrize("key_type", [*kt.KEY_TYPES, "future-type", "x", "t" * 64, "ключ"])
def test_valid_key_types_are_returned_unchanged(key_type: str) -> None:
    assert kt.validate_key_type(key_type) is key_type


@pytest.mark.parametrize("key_type", ["", "t" * 65, "pre-key\n", "pre\x00key", "a\x7fb",
                                      "\x85", "pre-key\ud800", None, 1, b"pre-key"])
def test_invalid_key_types_raise_InvalidKey(key_type: object) -> None:
    with pytest.raises(InvalidKey):
        kt.validate_key_type(key_type)


@given(st.one_of(edge_key_ids(), *(key_ids(t) for t in kt.KEY_TYPES)))
def test_realistic_and_edge_ids_are_accepted_verbatim(key_id: str) -> None:
    assert kt.validate_key_id(key_id) is key_id


def test_key_id_length_limit_is_1024_characters() -> None:
    assert kt.validate_key_id("é" * 1024)
    with pytest.raises(InvalidKey, match="1025 characters"):
        kt.validate_key_id("a" * 1025)


@pytest.mark.parametrize("key_id", ["a\x00b", "\x00", "x\ud800", "\udfff", 1, None, b"1"])
def test_unstorable_or_non_str_ids_raise_InvalidKey(key_id: object) -> None:
    with pytest.raises(InvalidKey) as info:
        kt.validate_key_id(key_id)
    assert isinstance(info.value, AuthStateError)
    assert "\x00" not in str(info.value)  # the message shows an escaped repr, never raw NUL


@pytest.mark.parametrize("value", [None, False, 0, 0.0, -0.0, float("nan"), ""])
def test_js_falsy_values_mean_delete(value: object) -> None:
    assert kt.is_js_falsy(value) is True


@pytest.mark.parametrize("value", [b"", bytearray(), {}, [], True, 1, -1, 0.5, float("inf"),
                                   "0", " ", "false", [0], {"a": None}, b"\x00"])
def test_js_truthy_values_are_stored(value: object) -> None:
    assert kt.is_js_falsy(value) is False
