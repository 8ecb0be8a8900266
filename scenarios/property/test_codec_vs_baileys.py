"""Our codec against Baileys' own BufferJSON, live in Node (one worker process per module).

- Baileys reads what we write and, writing it back, produces our text character for character.
- We read what Baileys writes (Buffers, Uint8Arrays, with and without its replacer).
- On adversarial objects (numeric-looking keys, odd numbers, junk base64) our reader revives
  exactly what Baileys' reviver revives, to the same bytes; the only intended difference is the
  v6 array form `{"type":"Buffer","data":[..]}`, which we revive and Baileys 7 does not.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from fixtures.strategies import baileys_values, creds, key_type_values, key_values
from harness.authstate import key_types as kt
from harness.authstate.codec import dumps, loads

pytestmark = pytest.mark.interop

BUFFERJSON_WORKER = """
import { serve } from './worker-prelude.mjs'
import { BufferJSON } from '@whiskeysockets/baileys/lib/Utils/generics.js'
// Buffers become {"$hex": ...} so Python can compare without using our own reader.
const tag = (v) => Buffer.isBuffer(v) ? { $hex: v.toString('hex') }
  : Array.isArray(v) ? v.map(tag)
  : v !== null && typeof v === 'object' ? Object.fromEntries(Object.entries(v).map(
      ([k, x]) => [k, tag(x)]))
  : v
serve({
  restringify: ({ text }) => JSON.stringify(JSON.parse(text, BufferJSON.reviver),
                                            BufferJSON.replacer),
  revive: ({ text }) => tag(JSON.parse(text, BufferJSON.reviver)),
  write: ({ hex }) => {
    const buf = Buffer.from(hex, 'hex'), u8 = new Uint8Array(buf)
    return [JSON.stringify(buf, BufferJSON.replacer), JSON.stringify(u8, BufferJSON.replacer),
            JSON.stringify(buf), JSON.stringify(u8),
            JSON.stringify({ a: buf, b: [u8], c: { d: buf } }, BufferJSON.replacer)]
  },
})
"""


@pytest.fixture(scope="module")
def bufferjson(baileys_node):
    with baileys_node.start_worker(BUFFERJSON_WORKER) as worker:
        yield worker


def tag(value: Any) -> Any:
    """A decoded value in the worker's neutral form; numbers as doubles, as JS holds them."""
    if isinstance(value, bytes):
        return {"$hex": value.hex()}
    if isinstance(value, dict):
        return {k: tag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [tag(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


# --- Baileys reads our text and writes it back identically -------------------------------------

@given(creds())
def test_baileys_rewrites_our_creds_text_identically(bufferjson, value: dict[str, Any]) -> None:
    text = dumps(value)
    assert bufferjson.request("restringify", text=text) == text


@pytest.mark.parametrize("key_type", kt.KEY_TYPES)
@given(data=st.data())
def test_baileys_rewrites_our_key_values_identically(bufferjson, key_type: str,
                                                     data: st.DataObject) -> None:
    text = dumps(data.draw(key_values(key_type)))
    assert bufferjson.request("restringify", text=text) == text


@given(st.one_of(baileys_values(js_text_exact=True), key_type_values().map(lambda b: b[1])))
@example({"b": 1.0, "10": [-0.0, 0.5], "2": {"__proto__": None, "": "\u2028"}, "a": "😀"})
@example(["lone \ud800 high", {"\udc00": "low"}])
def test_baileys_rewrites_our_generic_values_identically(bufferjson, value: Any) -> None:
    text = dumps(value)
    assert bufferjson.request("restringify", text=text) == text
    assert tag(loads(text)) == tag(bufferjson.request("revive", text=text))


# --- we read what Baileys writes ---------------------------------------------------------------

@given(st.binary(max_size=200))
@example(b"")
@example(bytes(range(256)))
def test_we_read_every_form_baileys_writes(bufferjson, data: bytes) -> None:
    replacer_buf, replacer_u8, plain_buf, plain_u8, nested = bufferjson.request(
        "write", hex=data.hex())
    assert loads(replacer_buf) == data
    assert loads(replacer_u8) == data
    assert loads(plain_buf) == data  # v6 / Buffer.toJSON array form
    if data:  # JSON.stringify(new Uint8Array(0)) is "{}", an empty object in every reader
        assert loads(plain_u8) == data  # numeric-key form
    assert loads(nested) == {"a": data, "b": [data], "c": {"d": data}}


# --- adversarial input: same revival decisions, same bytes -------------------------------------

_keys = st.one_of(
    st.integers(0, 2**32 + 3).map(str),
    st.sampled_from(["01", "-1", "+2", "-0", " 3", "\t4", "\n5", "\u00a06", "\u30007", "\ufeff8",
                     "\u20289", "\u001c1", "\u00851", "\u180e1", "٣", "３", "1e3", "0x1f", "5a",
                     "Infinity", "NaN", "", " ", "a", "4294967295", "4294967294"]))
_numbers = st.one_of(st.integers(-(2**80), 2**80), st.floats(allow_nan=False,
                                                             allow_infinity=False))
_values = st.one_of(_numbers, _numbers, _numbers, st.booleans(), st.none(), st.text(max_size=3))


@given(st.dictionaries(_keys, _values, min_size=1, max_size=12))
@example({"0": 300, "1": -1, "2": 1.7, "3": -1.7, "4": 18446744073709551617})
@example({"4294967295": 1, "4294967294": 2, "0": 3})
@example({"٣": 1})
@example({"\ufeff1": 1})
def test_numeric_key_objects_revive_exactly_as_in_baileys(bufferjson,
                                                          obj: dict[str, Any]) -> None:
    text = json.dumps(obj)
    assert tag(loads(text)) == tag(bufferjson.request("revive", text=text))


@given(st.text("ABYZabyz0189+/=-_ \n\t*.%é", max_size=40))
@example("AQ==AQ==")
@example("AQI=D")
@example("=AQI")
@example("A")
@example("-_8")
def test_buffer_base64_is_decoded_as_node_decodes_it(bufferjson, data: str) -> None:
    text = json.dumps({"k": {"type": "Buffer", "data": data, "extra": 1}})
    assert tag(loads(text)) == tag(bufferjson.request("revive", text=text))


@given(st.lists(st.integers(0, 255), max_size=20))
def test_array_form_is_our_only_extension(bufferjson, data: list[int]) -> None:
    text = json.dumps({"type": "Buffer", "data": data})
    assert bufferjson.request("revive", text=text) == {"type": "Buffer", "data": data}
    assert loads(text) == bytes(data)
