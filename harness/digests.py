"""How values are digested: the one form the histories, the checker and every reader share.

A digest is a short sha256 of a canonical JSON form (object keys sorted), so it is the same for
the value a driver handed to the store and for the value decoded from the JSON text PostgreSQL
holds. The form is typed: bytes, an un-decoded `{"type": "Buffer", "data": ...}` object, a
base64 string and a list of numbers digest differently, because a store that hands any of them
back where bytes were written breaks Baileys (the classic cache bug behind "Bad MAC").
`decoded` names which of those a value holds, so the checker can say "bytes came back as a
Buffer object" instead of only "unexpected". Pure: no value ever leaves as anything but a
digest.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson

# Bytes are tagged with a key no JSON a store returns can hold (it starts with a NUL), so a
# Buffer-shaped object never digests like the bytes it stands for.
_BYTES_TAG = "\u0000bytes"

BYTES = "bytes"
BUFFER_OBJECT = "Buffer-object"  # {"type": "Buffer", "data": "<base64>" | [numbers]}
NUMBERED_OBJECT = "numbered-object"  # {"0": 12, "1": 34, ...}: a JSON'd Uint8Array
NUMBER_ARRAY = "number-array"  # [12, 34, ...] where bytes were expected
BASE64_STRING = "base64-string"  # the bytes' base64 text where bytes were expected


def canonical(value: Any) -> Any:
    """The JSON structure digests are taken over: bytes tagged as bytes, everything else as is."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {_BYTES_TAG: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return value


def digest(value: Any) -> str:
    """Short sha256 of the canonical JSON of `value` (16 hex digits: collisions are not a
    concern among the ~10^6 writes of a run)."""
    text = orjson.dumps(canonical(value), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(text).hexdigest()[:16]


def _buffer_like(value: Any) -> tuple[str, bytes] | None:
    """(form, bytes) when `value` is one of the ways bytes come back un-decoded."""
    if isinstance(value, dict):
        if set(value) == {"type", "data"} and value.get("type") == "Buffer":
            data = value["data"]
            if isinstance(data, str):
                try:
                    return BUFFER_OBJECT, base64.b64decode(data, validate=True)
                except ValueError:
                    return None
            if isinstance(data, list) and all(isinstance(b, int) and 0 <= b < 256
                                              for b in data):
                return BUFFER_OBJECT, bytes(data)
            return None
        if value and all(k.isdigit() for k in value) and all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 256
                for v in value.values()):
            return NUMBERED_OBJECT, bytes(value[str(i)] for i in range(len(value))) \
                if all(str(i) in value for i in range(len(value))) else None
    return None


def decoded(value: Any) -> tuple[Any, set[str]]:
    """`value` with every un-decoded bytes form turned into bytes, and the forms found.

    Used on reads only: a value whose strict digest matches no write but whose decoded digest
    does came back in the wrong form, and the forms say which."""
    forms: set[str] = set()

    def walk(node: Any) -> Any:
        found = _buffer_like(node)
        if found is not None:
            forms.add(found[0])
            return found[1]
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    if isinstance(value, str):  # bytes written, a base64 text read back (top level only:
        try:                     # inside records, base64 strings are Baileys' own form)
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            return value, forms
        return raw, {BASE64_STRING}
    if isinstance(value, list) and value and all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 256 for v in value):
        return bytes(value), {NUMBER_ARRAY}
    return walk(value), forms


def form_of(value: Any) -> str:
    """A short name of what a value is, for messages: bytes, Buffer-object, str, dict ..."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return BYTES
    found = _buffer_like(value)
    if found is not None:
        return found[0]
    if isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        return NUMBER_ARRAY
    return type(value).__name__


def is_fresh(creds: Any) -> bool:
    """Creds of a company never paired (what `initAuthCreds()` gives): no `me`, not registered.
    Fresh creds over a paired identity are a forced logout (the checker's `creds-reset`)."""
    return not isinstance(creds, dict) or not creds.get("me") or not creds.get("registered")
