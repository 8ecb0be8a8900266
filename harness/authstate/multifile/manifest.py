"""The id manifest: exact `(type, id)` of key files whose names the reading rule gets wrong.

Baileys ignores it (it only opens files it computes names for). It is written compact with
sorted keys, so two exports of the same state are byte-identical.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from harness.authstate.multifile.names import key_file_name

FORMAT: Final = "authstate-harness/multifile-ids"
VERSION: Final = 1


def dumps(entries: Mapping[str, tuple[str, str]]) -> bytes:
    body = {"format": FORMAT, "version": VERSION,
            "keys": {name: [t, i] for name, (t, i) in sorted(entries.items())}}
    return json.dumps(body, ensure_ascii=False, sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def loads(data: bytes) -> dict[str, tuple[str, str]]:
    """Entries `{file name: (type, id)}`; raises ValueError saying what is wrong."""
    try:
        body: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"unreadable manifest: {exc}") from exc
    if not isinstance(body, dict) or body.get("format") != FORMAT:
        raise ValueError(f"not an authstate-harness id manifest (format must be {FORMAT!r})")
    if body.get("version") != VERSION:
        raise ValueError(f"manifest version {body.get('version')!r} is not supported "
                         f"(this harness reads version {VERSION})")
    keys = body.get("keys")
    if not isinstance(keys, dict):
        raise ValueError("manifest has no 'keys' object")
    entries: dict[str, tuple[str, str]] = {}
    for name, ref in keys.items():
        if (not isinstance(ref, list) or len(ref) != 2
                or not all(isinstance(part, str) for part in ref)):
            raise ValueError(f"manifest entry for {name!r} must be [type, id]")
        if key_file_name(ref[0], ref[1]) != name:
            raise ValueError(f"manifest entry for {name!r} names a key whose file would be "
                             f"{key_file_name(ref[0], ref[1])!r}")
        entries[name] = (ref[0], ref[1])
    return entries
