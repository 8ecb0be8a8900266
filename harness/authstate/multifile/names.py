"""File names of Baileys' `useMultiFileAuthState` folder, and the rule that reads them back.

Baileys names a key file `fixFileName(`${type}-${id}.json`)` with `/` -> `__` and `:` -> `-`
(nothing else; lib/Utils/use-multi-file-auth-state.js). It never parses names: it recomputes
them from ids it already knows. Going the other way (folder -> database) loses information: a
fixed `-` may have been `:`, a fixed `__` may have been `/`, and type names themselves contain
`-`. The documented reading rule (`parse_file_name`):

1. The type is the *longest* known key type `T` such that the name starts with `T-`
   (so `sender-key-memory-x.json` is type `sender-key-memory`, id `x`).
2. The id is un-fixed by what Baileys' own ids look like for that type:
   - `app-state-sync-key`: ids are standard base64 (no `_`), so every `__` was a `/`.
   - `sender-key`: ids are `<group jid>::<user>::<device>` (libsignal SenderKeyName), so a
     trailing `--<user>--<digits>` was `::<user>::<digits>`; the group part is kept as is (old
     group jids like `5511999-1600000000@g.us` contain `-` but never `:`).
   - every other type: ids hold neither `/` nor `:` (digits, jids without device, signal
     addresses `user.device`, `__index`, `<lid>_reverse`), so the fixed id *is* the id.

Ids that this rule would read back wrongly (or types it does not know) are not lost: the export
lists them in a small manifest (`MANIFEST_NAME`, ignored by Baileys) that the import prefers. Two
keys whose names collide after fixing cannot live in one Baileys folder at all (Baileys itself
would read one for the other), so the export refuses them.
"""

from __future__ import annotations

import re
from typing import Final

from harness.authstate.key_types import APP_STATE_SYNC_KEY, KEY_TYPES, SENDER_KEY

CREDS_FILE: Final = "creds.json"
MANIFEST_NAME: Final = ".authstate-harness-ids.json"
"""Sidecar written by `export_company` only when some id does not survive the naming rule."""
NAME_MAX_BYTES: Final = 255  # NAME_MAX on Linux/macOS filesystems: longer names cannot exist

_SUFFIX: Final = ".json"
_TYPES_LONGEST_FIRST: Final = tuple(sorted(KEY_TYPES, key=len, reverse=True))
_SENDER_KEY_TAIL: Final = re.compile(r"(?s)(.*)--([^-]*)--([0-9]+)")


def fix_file_name(name: str) -> str:
    """Baileys' `fixFileName`: `/` -> `__`, `:` -> `-`, nothing else."""
    return name.replace("/", "__").replace(":", "-")


def key_file_name(key_type: str, key_id: str) -> str:
    """The file Baileys reads and writes for one key."""
    return fix_file_name(f"{key_type}-{key_id}{_SUFFIX}")


def _unfix_id(key_type: str, fixed_id: str) -> str:
    if key_type == APP_STATE_SYNC_KEY:
        return fixed_id.replace("__", "/")
    if key_type == SENDER_KEY:
        match = _SENDER_KEY_TAIL.fullmatch(fixed_id)
        if match:
            return f"{match[1]}::{match[2]}::{match[3]}"
    return fixed_id


def parse_file_name(name: str) -> tuple[str, str] | None:
    """`(type, id)` of a key file by the documented rule, or None if it is not a key file name.

    `creds.json` and the manifest are not key files (None).
    """
    if not name.endswith(_SUFFIX) or name == CREDS_FILE:
        return None
    stem = name[: -len(_SUFFIX)]
    for key_type in _TYPES_LONGEST_FIRST:
        if stem.startswith(key_type + "-"):
            return key_type, _unfix_id(key_type, stem[len(key_type) + 1:])
    return None


def round_trips(key_type: str, key_id: str) -> bool:
    """True when the naming rule alone gives this key back from its file name."""
    return parse_file_name(key_file_name(key_type, key_id)) == (key_type, key_id)


def name_too_long(name: str) -> bool:
    """True when no filesystem can hold this name (Baileys itself would fail to write it)."""
    return len(name.encode("utf-8", "surrogatepass")) > NAME_MAX_BYTES
