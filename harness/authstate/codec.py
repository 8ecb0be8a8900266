"""Baileys' BufferJSON in Python: bytes <-> JSON exactly as Baileys v7 writes and reads them.

Writing: every `bytes` becomes `{"type": "Buffer", "data": "<base64>"}` (what BufferJSON.replacer
emits, so Baileys v7 can read what we write). Reading revives three forms, bottom-up like a JSON
reviver:
  1. `{"type": "Buffer", "data": "<base64 string>"}` (v7 writer; extra keys ignored, as in v7),
  2. `{"type": "Buffer", "data": [1, 2, 3]}` (v6 writer, Node's Buffer.toJSON, JSONB dumps of
     Node Buffers; v7 does NOT revive this, we do),
  3. an object whose keys all parse as integers and whose values are all numbers, i.e. a JSON'd
     Uint8Array `{"0": 1, "1": 2}` (v7 revives it; same key order and byte truncation as V8).
Values are plain Python: dict, list, str, int, float, bool, None and bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any

from harness.authstate.errors import UnsupportedValue

_INT_PREFIX = re.compile(r"\s*[+-]?\d")  # what JS parseInt(k, 10) accepts as numeric
_ARRAY_INDEX = re.compile(r"0|[1-9]\d*")


def _to_uint8(number: float) -> int:
    """ECMAScript ToUint8: what Buffer.from(array) does to each element."""
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
    if obj and _INT_PREFIX.match(next(iter(obj))) and all(_INT_PREFIX.match(k) for k in obj):
        values = _js_values_order(obj)
        if all(_is_number(v) for v in values):
            return bytes(_to_uint8(v) for v in values)
    return obj


def _b64decode_like_node(text: str) -> bytes:
    """Node's Buffer.from(s, 'base64'): lenient (url-safe chars, missing padding, whitespace)."""
    try:
        return binascii.a2b_base64(text, strict_mode=True)  # fast path: canonical base64
    except binascii.Error:
        pass
    cleaned = re.sub(r"[^A-Za-z0-9+/\-_]", "", text.split("=", 1)[0])
    cleaned = cleaned.replace("-", "+").replace("_", "/")
    cleaned = cleaned[: len(cleaned) - (len(cleaned) % 4 == 1)]  # a lone trailing char is dropped
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - cleaned input always decodes
        raise UnsupportedValue(f"undecodable base64 in a Buffer: {exc}") from exc


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"type": "Buffer", "data": base64.b64encode(value).decode("ascii")}
    if isinstance(value, (tuple, set, frozenset)):
        raise UnsupportedValue(f"{type(value).__name__} is not a Baileys value; use a list")
    raise UnsupportedValue(
        f"{type(value).__name__} cannot be stored: values must be JSON types or bytes")


def dumps(value: Any) -> str:
    """JSON text as `JSON.stringify(value, BufferJSON.replacer)` writes it (compact, UTF-8)."""
    try:
        text = json.dumps(value, default=_default, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False, check_circular=True)
    except ValueError as exc:  # NaN/Infinity or a circular structure
        if isinstance(exc, UnsupportedValue):
            raise
        raise UnsupportedValue(f"value cannot be written as JSON: {exc}") from exc
    except TypeError as exc:  # non-string dict keys
        raise UnsupportedValue(f"value cannot be written as JSON: {exc}") from exc
    return text


def dumps_for_postgres(value: Any) -> str:
    """`dumps`, refusing what PostgreSQL JSONB cannot hold (NUL, lone surrogates)."""
    text = dumps(value)
    if "\x00" in text:
        raise UnsupportedValue(
            "value holds a NUL character (U+0000), which PostgreSQL JSONB cannot store",
            hint="strip NUL from strings before saving; binary data belongs in bytes")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsupportedValue(
            "value holds a lone UTF-16 surrogate, which is not valid UTF-8 and cannot be stored",
            hint="repair the string (it is not valid Unicode text)") from exc
    return text


def loads(text: str | bytes) -> Any:
    """Parse JSON and revive every Buffer form (BufferJSON.reviver, plus the v6 array form)."""
    try:
        return json.loads(text, object_hook=revive)
    except json.JSONDecodeError as exc:
        raise UnsupportedValue(f"malformed JSON at line {exc.lineno} column {exc.colno}: "
                               f"{exc.msg}") from exc


def encode(value: Any) -> Any:
    """The JSON-ready structure of `value` (bytes replaced by Buffer objects)."""
    return json.loads(dumps(value))


def decode(structure: Any) -> Any:
    """Revive an already-parsed JSON structure (e.g. from a driver that decoded JSONB for us)."""
    return loads(json.dumps(structure, ensure_ascii=False))
