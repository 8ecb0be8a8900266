"""Decode request bodies the way Go's encoding/json does, so errors read like Toxiproxy's.

Toxiproxy decodes one JSON value from the body (trailing bytes are ignored), matches object keys
case-insensitively, ignores unknown keys, leaves a field unchanged when its value is `null`, and
refuses a value of the wrong JSON kind with `json: cannot unmarshal <kind> into Go struct field
<Struct>.<field> of type <type>`. Clients that parse those messages (or just show them) see the
same text from us.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

_DECODER = json.JSONDecoder()
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_MISSING = object()


class GoJSONError(ValueError):
    """A body Go's decoder would refuse; `str()` is Go's message (without the API prefix)."""


def decode_body(raw: bytes) -> Any:
    """The first JSON value of a request body, as Go's `json.NewDecoder(body).Decode` sees it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GoJSONError("invalid character in request body (not UTF-8)") from exc
    text = text.lstrip(" \t\r\n")
    if not text:
        raise GoJSONError("EOF")
    try:
        value, _end = _DECODER.raw_decode(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text):
            raise GoJSONError("unexpected EOF") from exc
        raise GoJSONError(f"invalid character {text[exc.pos]!r} {_describe(exc.msg)}") from exc
    return value


def _describe(msg: str) -> str:
    return {
        "Expecting value": "looking for beginning of value",
        "Expecting property name enclosed in double quotes": "looking for beginning of object key "
        "string",
        "Expecting ':' delimiter": "after object key",
        "Expecting ',' delimiter": "after object key:value pair",
    }.get(msg, f"({msg.lower()})")


def kind_of(value: Any) -> str:
    """The JSON kind Go names in unmarshal errors."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def lookup(obj: Mapping[str, Any], key: str) -> Any:
    """Go's key matching: exact key first, then the first case-insensitive match; else missing."""
    if key in obj:
        return obj[key]
    folded = key.casefold()
    for k, v in obj.items():
        if k.casefold() == folded:
            return v
    return _MISSING


def require_object(value: Any, go_type: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GoJSONError(f"json: cannot unmarshal {kind_of(value)} into Go value of type "
                          f"{go_type}")
    return value


def field_str(obj: Mapping[str, Any], key: str, default: str, struct: str) -> str:
    value = lookup(obj, key)
    if value is _MISSING or value is None:
        return default
    if not isinstance(value, str):
        raise GoJSONError(_field_error(value, struct, key, "string"))
    return value


def field_bool(obj: Mapping[str, Any], key: str, default: bool, struct: str) -> bool:
    value = lookup(obj, key)
    if value is _MISSING or value is None:
        return default
    if not isinstance(value, bool):
        raise GoJSONError(_field_error(value, struct, key, "bool"))
    return value


def field_optional_bool(obj: Mapping[str, Any], key: str, struct: str) -> bool | None:
    value = lookup(obj, key)
    if value is _MISSING or value is None:
        return None
    if not isinstance(value, bool):
        raise GoJSONError(_field_error(value, struct, key, "bool"))
    return value


def field_float(obj: Mapping[str, Any], key: str, default: float, struct: str,
                go_type: str = "float32") -> float:
    value = lookup(obj, key)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GoJSONError(_field_error(value, struct, key, go_type))
    return float(value)


def field_int(obj: Mapping[str, Any], key: str, default: int, struct: str,
              go_type: str = "int64") -> int:
    """An integer field: Go refuses fractions (`1.5`, even `1.0`) and values beyond int64."""
    value = lookup(obj, key)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float):
            raise GoJSONError(f"json: cannot unmarshal number {value!r} into Go struct field "
                              f"{struct}.{key} of type {go_type}")
        raise GoJSONError(_field_error(value, struct, key, go_type))
    if not INT64_MIN <= value <= INT64_MAX:
        raise GoJSONError(f"json: cannot unmarshal number {value} into Go struct field "
                          f"{struct}.{key} of type {go_type}")
    return value


def _field_error(value: Any, struct: str, key: str, go_type: str) -> str:
    return (f"json: cannot unmarshal {kind_of(value)} into Go struct field {struct}.{key} "
            f"of type {go_type}")


def is_missing(value: Any) -> bool:
    return value is _MISSING
