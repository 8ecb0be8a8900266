"""Baileys' BufferJSON in Python: bytes <-> JSON exactly as Baileys v7 writes and reads them.

Writing: every `bytes` becomes `{"type": "Buffer", "data": "<base64>"}` (what BufferJSON.replacer
emits, so Baileys v7 can read what we write). Reading revives three forms, bottom-up like a JSON
reviver:
  1. `{"type": "Buffer", "data": "<base64 string>"}` (v7 writer; extra keys ignored, as in v7),
  2. `{"type": "Buffer", "data": [1, 2, 3]}` (v6 writer, Node's Buffer.toJSON, JSONB dumps of
     Node Buffers; v7 does NOT revive this, we do),
  3. an object whose keys all parse as integers and whose values are all numbers, i.e. a JSON'd
     Uint8Array `{"0": 1, "1": 2}` (v7 revives it; same key order and byte truncation as V8).
Values are plain Python: dict, list, str, int, float, bool, None and bytes. Writing refuses what
a trip through JavaScript would silently change (tuples, sets, non-str keys, NaN, cycles).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from base64 import b64encode
from typing import Any

import orjson

from harness.authstate.errors import UnsupportedValue

# What JS parseInt(k, 10) reads as a number: JS whitespace (not Python's \s), sign, ASCII digit.
_INT_PREFIX = re.compile(
    "[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]*[+-]?[0-9]")
_JS_WHITESPACE = ("\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                  "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff")
_NUMERIC_START = frozenset("0123456789+-" + _JS_WHITESPACE)  # a parseInt-able key starts so
_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")  # ASCII only: Python's \d also matches '٣'
_MAX_SAFE_INTEGER = 2**53
_SURROGATE = re.compile("[\ud800-\udfff]")
# A JSON escape of NUL or of a surrogate, preceded by an even number of backslashes.
_UNSTORABLE_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u(?:0000|d[89a-f][0-9a-f]{2})")


def _to_uint8(number: float) -> int:
    """ECMAScript ToUint8: what Buffer.from(array) does to each element."""
    if not isinstance(number, float) and not -_MAX_SAFE_INTEGER <= number <= _MAX_SAFE_INTEGER:
        try:
            number = float(number)  # JSON.parse reads every number as a double
        except OverflowError:
            return 0  # a literal too large for a double is Infinity in JS
    if isinstance(number, float):
        if math.isnan(number) or math.isinf(number):
            return 0
        number = math.trunc(number)
    return int(number) % 256


def _js_values_order(obj: dict[str, Any]) -> list[Any]:
    """Object.values order: array-index keys ascending, then the rest in insertion order."""
    index_keys = [k for k in obj if _ARRAY_INDEX.fullmatch(k) and int(k) < 2**32 - 1]
    if len(index_keys) == len(obj):
        return [obj[k] for k in sorted(index_keys, key=int)]
    index_set = set(index_keys)
    rest = [k for k in obj if k not in index_set]
    return [obj[k] for k in sorted(index_keys, key=int)] + [obj[k] for k in rest]


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def revive(obj: dict[str, Any]) -> Any:
    """`json.loads` object_hook: turn one decoded JSON object into bytes when Baileys would."""
    if obj.get("type") == "Buffer" and "data" in obj:
        data = obj["data"]
        if data.__class__ is str:
            return _b64decode_like_node(data)
        if isinstance(data, list) and all(_is_number(v) for v in data):
            return bytes(_to_uint8(v) for v in data)
    first_key = next(iter(obj), None)
    if first_key is None:
        return obj  # {} stays an object (Object.keys(v).length > 0 in Baileys)
    if first_key[:1] not in _NUMERIC_START:
        return obj  # the usual case: a named key, so not every key can be numeric
    # Values next: cheap class checks exit at the first non-number (e.g. a session's
    # messageKeys {"5": "<base64>"}), before any key parsing or ordering.
    for v in obj.values():
        if v.__class__ is not int and v.__class__ is not float and not _is_number(v):
            return obj
    if all(_INT_PREFIX.match(k) for k in obj):
        return bytes(_to_uint8(v) for v in _js_values_order(obj))
    return obj


def _b64decode_like_node(text: str) -> bytes:
    """Node's Buffer.from(s, 'base64'): lenient (url-safe chars, missing padding, whitespace)."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)  # fast path: canonical base64
    except ValueError:  # binascii.Error, or ValueError for non-ASCII text (Node skips it)
        pass
    cleaned = re.sub(r"[^A-Za-z0-9+/\-_]", "", text.split("=", 1)[0])
    cleaned = cleaned.replace("-", "+").replace("_", "/")
    cleaned = cleaned[: len(cleaned) - (len(cleaned) % 4 == 1)]  # a lone trailing char is dropped
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - cleaned input always decodes
        raise UnsupportedValue(f"undecodable base64 in a Buffer: {exc}") from exc


def _array_index(key: str) -> int | None:
    """The integer of a canonical array-index key ("0", "17"; not "01", "-1", "٣"), else None."""
    if key.isdigit() and key.isascii() and (key[0] != "0" or key == "0") and len(key) <= 10:
        index = int(key)
        return index if index < 2**32 - 1 else None
    return None


def _js_key_order(obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` with its keys in the order V8 gives them (array indices first, ascending)."""
    previous, named_seen = -1, False
    for key in obj:  # fast path: already in V8 order (the usual case)
        index = _array_index(key)
        if index is None:
            named_seen = True
        elif named_seen or index < previous:
            break
        else:
            previous = index
    else:
        return obj
    indexed = sorted((i, k) for k in obj if (i := _array_index(k)) is not None)
    ordered = {k: obj[k] for _, k in indexed}
    ordered.update((k, v) for k, v in obj.items() if k not in ordered)
    return ordered


def _prepare(value: Any) -> Any:
    """The JSON-ready form of `value`: what `JSON.stringify` would see after the replacer.

    Refuses what a JS round trip would silently change (tuples, sets, non-str keys, NaN),
    writes bytes as base64 Buffers, integral floats as integers (V8 prints `1`, not `1.0`) and
    puts integer-like keys first, as V8 orders them.
    """
    cls = value.__class__
    if cls is str or cls is int or cls is bool or value is None:
        return value
    if cls is dict:
        out = {}
        digit_key = False
        for k, v in value.items():
            if k.__class__ is not str:
                if not isinstance(k, str):
                    raise UnsupportedValue(
                        f"object key {k!r} is a {type(k).__name__}; JSON object keys are strings",
                        hint="convert keys with str() before saving, as JavaScript would")
                k = str(k)
            if not digit_key and k[:1].isdigit():
                digit_key = True
            vcls = v.__class__
            out[k] = v if vcls is str or vcls is int or vcls is bool or v is None else _prepare(v)
        return _js_key_order(out) if digit_key else out
    if cls is bytes:
        return {"type": "Buffer", "data": b64encode(value).decode("ascii")}
    if cls is list:
        return [v if v.__class__ is str or v.__class__ is int else _prepare(v) for v in value]
    if cls is float:
        if math.isnan(value) or math.isinf(value):
            raise UnsupportedValue(f"{value!r} is not a JSON number (JSON.stringify writes null)",
                                   hint="store None, or a finite number")
        if value.is_integer() and -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
            return int(value)
        return value
    return _prepare_uncommon(value)


def _prepare_uncommon(value: Any) -> Any:
    if isinstance(value, (bytearray, memoryview)):
        return _prepare(bytes(value))
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return _prepare(float(value))
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dict):
        return _prepare(dict(value))
    if isinstance(value, list):
        return _prepare(list(value))
    if isinstance(value, (tuple, set, frozenset)):
        raise UnsupportedValue(f"{type(value).__name__} is not a Baileys value; use a list",
                               hint="a tuple or set would come back as a list")
    raise UnsupportedValue(
        f"{type(value).__name__} cannot be stored: values must be JSON types or bytes")


def _escape_surrogates(text: str) -> str:
    # JSON.stringify (ES2019) writes a lone surrogate as an escape; Python leaves it raw.
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def dumps(value: Any) -> str:
    """JSON text as `JSON.stringify(value, BufferJSON.replacer)` writes it (compact, UTF-8).

    Identical to V8's text except for floats below 1e-4 or integral floats beyond 2**53 (Python
    writes `1e-05`, V8 `0.00001`; both parse to the same number) and integers beyond 2**53,
    which a JS number cannot hold exactly.
    """
    try:
        structure = _prepare(value)
    except RecursionError as exc:
        raise UnsupportedValue("value is nested too deeply or refers to itself",
                               hint="Baileys values are trees; break the cycle") from exc
    text = json.dumps(structure, ensure_ascii=False, separators=(",", ":"), allow_nan=False,
                      check_circular=False)
    return _escape_surrogates(text)


def _check_storable(value: Any) -> None:
    """Refuse, without building anything, what `_prepare` refuses (the orjson path's guard)."""
    cls = value.__class__
    if cls is dict:
        for k, v in value.items():
            if k.__class__ is not str:
                raise _NotFast
            c = v.__class__
            if not (c is str or c is bytes or c is int or c is bool or v is None):
                _check_storable(v)
    elif cls is list:
        for v in value:
            c = v.__class__
            if not (c is str or c is bytes or c is int or c is bool or v is None):
                _check_storable(v)
    elif cls is float:
        if not math.isfinite(value):
            raise _NotFast
    elif not (cls is str or cls is bytes or cls is int or cls is bool or value is None):
        raise _NotFast  # subclasses, bytearray, tuples, sets...: let the exact path decide


class _NotFast(Exception):
    """Internal: the value needs the exact (slower) path, which accepts or refuses it."""


def _buffer_default(value: Any) -> Any:
    if value.__class__ is bytes:
        return {"type": "Buffer", "data": binascii.b2a_base64(value, newline=False).decode()}
    raise TypeError  # unreachable after _check_storable; orjson turns it into an error


def _dumps_fast(value: Any) -> str:
    """orjson text of a value `_check_storable` passed: same data as `dumps`, other layout.

    Key order and the spelling of integral floats may differ from V8's; JSONB normalises both,
    so this is used for PostgreSQL only (files use `dumps`). ~4x faster than `dumps`.
    """
    _check_storable(value)
    try:
        return orjson.dumps(value, default=_buffer_default).decode()
    except orjson.JSONEncodeError:
        raise _NotFast from None  # > 64-bit ints, deep nesting, surrogates: exact path decides


_BUFFER_FIELD_OPENINGS: dict[str, str] = {}  # field name -> '"name":{"type":"Buffer","data":"'
_MAX_BUFFER_FIELD_NAMES = 1024  # a bound on the memo, whatever names callers use


def _dumps_buffer_fields(value: dict[Any, Any]) -> str | None:
    """Text of an object whose fields are all bytes under plain names (a key pair: every
    pre-key), or None for any other shape.

    The most frequent bulk value (812 pre-keys on first connect) in about half the time of the
    orjson path, whose per-bytes callback dominates. Plain names (ASCII identifiers) need no
    escaping and base64 holds nothing JSONB refuses, so the text needs no further checks.
    """
    parts = ["{"]
    append, openings = parts.append, _BUFFER_FIELD_OPENINGS
    for name, field in value.items():
        if field.__class__ is not bytes:
            return None
        opening = openings.get(name)
        if opening is None:
            if not (name.__class__ is str and name.isascii() and name.isidentifier()):
                return None
            opening = f'"{name}":{{"type":"Buffer","data":"'
            if len(openings) < _MAX_BUFFER_FIELD_NAMES:
                openings[name] = opening
        append(opening)
        append(binascii.b2a_base64(field, newline=False).decode())
        append('"},')
    if len(parts) == 1:
        return "{}"
    parts[-1] = '"}}'
    return "".join(parts)


def dumps_for_postgres(value: Any) -> str:
    """JSON text for a JSONB column, refusing what PostgreSQL cannot hold (NUL, lone surrogates).

    Accepts and refuses exactly what `dumps` does; the common case takes the orjson path.
    NUL and lone surrogates reach the text as escapes (`\\u0000`, `\\ud800`) that JSONB
    rejects; catching them here keeps a bad value from surfacing as a database error.
    """
    if value.__class__ is dict:
        text = _dumps_buffer_fields(value)
        if text is not None:
            return text
    try:
        text = _dumps_fast(value)
    except (_NotFast, RecursionError):
        text = dumps(value)
    if "\\u" in text:
        match = _UNSTORABLE_ESCAPE.search(text)
        if match is not None and match.group().endswith("\\u0000"):
            raise UnsupportedValue(
                "value holds a NUL character (U+0000), which PostgreSQL JSONB cannot store",
                hint="strip NUL from strings before saving; binary data belongs in bytes")
        if match is not None:
            raise UnsupportedValue(
                "value holds a lone UTF-16 surrogate, which is not valid Unicode text and "
                "cannot be stored in PostgreSQL", hint="repair the string before saving")
    return text


def _reject_constant(name: str) -> Any:
    raise UnsupportedValue(f"{name} is not valid JSON (JSON.parse rejects it)",
                           hint="the stored text was not written by JSON.stringify")


_ORJSON_INT_RANGE = (-(2**63), 2**64)  # orjson reads integers outside this as floats


class _NeedsExactParse(Exception):
    """Internal: orjson turned a >64-bit integer into a float; json keeps it exact."""


def _check_float(value: float) -> None:
    if not _ORJSON_INT_RANGE[0] <= value < _ORJSON_INT_RANGE[1]:
        raise _NeedsExactParse


def _revive_tree(node: Any) -> Any:
    """Apply `revive` bottom-up to an orjson-parsed tree: what `json.loads(object_hook=)` does."""
    if node.__class__ is dict:
        for key, value in node.items():
            cls = value.__class__
            if cls is dict or cls is list:
                revived = _revive_tree(value)
                if revived is not value:
                    node[key] = revived  # replacing a value never resizes the dict
            elif cls is float:
                _check_float(value)
        return revive(node)
    for i, value in enumerate(node):
        cls = value.__class__
        if cls is dict or cls is list:
            node[i] = _revive_tree(value)
        elif cls is float:
            _check_float(value)
    return node


def loads(text: str | bytes) -> Any:
    """Parse JSON and revive every Buffer form (BufferJSON.reviver, plus the v6 array form)."""
    try:
        tree = orjson.loads(text)  # parses ~5x faster than json; revival is the same walk
    except orjson.JSONDecodeError:
        pass  # json reports the error precisely, or accepts what orjson won't (lone surrogates)
    else:
        cls = tree.__class__
        try:
            if cls is dict or cls is list:
                return _revive_tree(tree)
            if cls is float:
                _check_float(tree)
            return tree
        except _NeedsExactParse:
            pass
    try:
        return json.loads(text, object_hook=revive, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise UnsupportedValue(f"malformed JSON at line {exc.lineno} column {exc.colno}: "
                               f"{exc.msg}") from exc


def encode(value: Any) -> Any:
    """The JSON-ready structure of `value` (bytes replaced by Buffer objects)."""
    return json.loads(dumps(value))


def decode(structure: Any) -> Any:
    """Revive an already-parsed JSON structure (e.g. from a driver that decoded JSONB for us)."""
    return loads(json.dumps(structure, ensure_ascii=False))


# A bridge (the Node.js sidecar) marks a plain object that only LOOKS like bytes - a
# {"type": "Buffer", "data": ...} object or {"0": 12, ...} - as {PLAIN: [[key, value], ...]},
# which `loads` leaves alone (pairs are never revived), so the object a store really returned
# reaches the checker as an object, not as the bytes BufferJSON would make of it.
PLAIN = "\u0000plain"


def unwrap_plain(node: Any) -> Any:
    """`node` (as `loads` returned it) with every PLAIN mark turned back into the plain dict."""
    if node.__class__ is dict:
        if len(node) == 1 and PLAIN in node:
            return {str(k): unwrap_plain(v) for k, v in node[PLAIN]}
        for key, value in node.items():
            if value.__class__ is dict or value.__class__ is list:
                node[key] = unwrap_plain(value)
    elif node.__class__ is list:
        for i, value in enumerate(node):
            if value.__class__ is dict or value.__class__ is list:
                node[i] = unwrap_plain(value)
    return node
