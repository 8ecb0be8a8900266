"""Key types: origin-system TTLs, what ids/types are accepted, and Baileys' falsy-means-delete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fixtures.baileys_types import baileys_key_types
from fixtures.strategies import edge_key_ids, key_ids
from harness.authstate import key_types as kt
from harness.authstate.errors import AuthStateError, InvalidKey

DAY = 86_400
REPO = Path(__file__).resolve().parents[2]
ORIGIN_DOC = Path("/work/shared/reference/origin-system.md")  # where the origin system is described
_TTL_TEXT = re.compile(r"(?P<types>[a-z-]+(?:,\s+[a-z-]+)*)\s+(?P<short>\d+)\s+days;\s+"
                       r"(?:others|everything else)\s+(?P<long>\d+)")


def test_key_types_are_those_baileys_declares(baileys_node) -> None:
    """Our list against Baileys' own `SignalDataTypeMap` (installed package), not a copy of it."""
    assert set(kt.KEY_TYPES) == baileys_key_types(baileys_node.package_dir)


def _documented_ttls(text: str, where: str) -> tuple[set[str], int, int]:
    found = _TTL_TEXT.search(" ".join(text.split()))
    assert found, f"{where} no longer states the TTLs as '<types> N days; others M'"
    types = {t.strip() for t in found["types"].split(",")}
    return types, int(found["short"]) * DAY, int(found["long"]) * DAY


def _ttl_sources() -> list[tuple[str, str]]:
    stores_doc = (REPO / "docs" / "stores.md").read_text(encoding="utf-8")  # the store's reference
    start = stores_doc.index("TTL by key type")
    sources = [("docs/stores.md", stores_doc[start:start + 300])]
    if ORIGIN_DOC.exists():  # the origin system's own description, where it is available
        text = ORIGIN_DOC.read_text(encoding="utf-8")
        start = text.index("TTL per key type")
        sources.append((str(ORIGIN_DOC), text[start:start + 300]))
    return sources


TTL_SOURCES = _ttl_sources()


@pytest.mark.parametrize(("where", "text"), TTL_SOURCES, ids=[Path(w).name for w, _ in TTL_SOURCES])
def test_ttls_are_the_documented_ones(where: str, text: str) -> None:
    """Every type's TTL as docs/stores.md (and the origin system's description) state it; an
    unknown type gets the long one."""
    short_types, short, long = _documented_ttls(text, where)
    assert short_types <= set(kt.KEY_TYPES), f"{where} names types Baileys does not have"
    for key_type in [*kt.KEY_TYPES, "some-future-type"]:
        assert kt.ttl_seconds(key_type) == (short if key_type in short_types else long), key_type


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
