"""Baileys v7 signal key types: names, origin-system TTLs, id validation, JS falsiness.

TTLs follow the origin system: short-lived protocol material (pre-keys, sessions, sender keys,
LID mappings) expires after 7 days, everything else after 14. Types Baileys may add later are
accepted with the 14-day default, so a Baileys upgrade never makes the store refuse writes.
"""

from __future__ import annotations

import math
import unicodedata
from typing import Final

from harness.authstate.company import validate_company_id
from harness.authstate.errors import InvalidKey

PRE_KEY: Final = "pre-key"
SESSION: Final = "session"
SENDER_KEY: Final = "sender-key"
SENDER_KEY_MEMORY: Final = "sender-key-memory"
APP_STATE_SYNC_KEY: Final = "app-state-sync-key"
APP_STATE_SYNC_VERSION: Final = "app-state-sync-version"
LID_MAPPING: Final = "lid-mapping"
DEVICE_LIST: Final = "device-list"
TCTOKEN: Final = "tctoken"
IDENTITY_KEY: Final = "identity-key"

KEY_TYPES: Final[tuple[str, ...]] = (
    PRE_KEY, SESSION, SENDER_KEY, SENDER_KEY_MEMORY, APP_STATE_SYNC_KEY,
    APP_STATE_SYNC_VERSION, LID_MAPPING, DEVICE_LIST, TCTOKEN, IDENTITY_KEY,
)
"""Every type in Baileys 7's `SignalDataTypeMap`."""

DAY: Final = 86_400
SHORT_TTL_SECONDS: Final = 7 * DAY
DEFAULT_TTL_SECONDS: Final = 14 * DAY
_SHORT_TTL_TYPES: Final = frozenset({LID_MAPPING, PRE_KEY, SESSION, SENDER_KEY})

_KNOWN_TYPES: Final = frozenset(KEY_TYPES)
MAX_KEY_TYPE_CHARS: Final = 64
MAX_KEY_ID_CHARS: Final = 1024


def ttl_seconds(key_type: str) -> int:
    """Seconds until a row of `key_type` expires (`expires_at = now() + ttl`)."""
    return SHORT_TTL_SECONDS if key_type in _SHORT_TTL_TYPES else DEFAULT_TTL_SECONDS


def _has_lone_surrogate(text: str) -> bool:
    # A str holding a surrogate code point cannot be encoded as UTF-8 (PostgreSQL text).
    return any("\ud800" <= ch <= "\udfff" for ch in text) if not text.isascii() else False


def validate_key_type(key_type: object) -> str:
    """Return `key_type` if it can name a key type; raise `InvalidKey` otherwise."""
    if key_type in _KNOWN_TYPES:  # the hot path: one set lookup
        return key_type  # type: ignore[return-value]
    if not isinstance(key_type, str):
        raise InvalidKey(f"key type must be a str, got {type(key_type).__name__}")
    if not key_type or len(key_type) > MAX_KEY_TYPE_CHARS:
        raise InvalidKey(f"key type must be 1 to {MAX_KEY_TYPE_CHARS} characters, got "
                         f"{len(key_type)}: {key_type[:MAX_KEY_TYPE_CHARS]!a}")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in key_type):
        raise InvalidKey(f"key type {key_type!a} holds a control character or a lone "
                         "surrogate", hint=f"Baileys' key types look like {PRE_KEY!r}")
    return key_type


def validate_key_id(key_id: object) -> str:
    """Return `key_id` if PostgreSQL text can hold it; raise `InvalidKey` otherwise.

    Ids legitimately hold `/ : + = @ . _ -` and any Unicode; only what cannot be stored
    (NUL, lone surrogates) or is absurdly long is refused.
    """
    if (key_id.__class__ is str and key_id.isascii() and len(key_id) <= MAX_KEY_ID_CHARS
            and "\x00" not in key_id):
        return key_id  # the hot path (keys.set of 812 ids): one pass, no surrogates possible
    if not isinstance(key_id, str):
        raise InvalidKey(f"key id must be a str, got {type(key_id).__name__}",
                         hint="Baileys passes ids as strings, e.g. pre-key '1', not 1")
    if len(key_id) > MAX_KEY_ID_CHARS:
        raise InvalidKey(f"key id is {len(key_id)} characters, more than {MAX_KEY_ID_CHARS}: "
                         f"{key_id[:40]!a}...")
    if "\x00" in key_id:
        raise InvalidKey(f"key id {key_id[:80]!a} holds a NUL character, which PostgreSQL "
                         "text cannot store")
    if _has_lone_surrogate(key_id):
        raise InvalidKey(f"key id {key_id[:80]!a} holds a lone UTF-16 surrogate, which is "
                         "not valid UTF-8 and cannot be stored")
    return key_id


def is_js_falsy(value: object) -> bool:
    """True when JavaScript would treat `value` as falsy, i.e. Baileys means "delete".

    JS falsy: null/undefined, false, 0, -0, NaN, "". Empty Buffers, objects and arrays are
    truthy in JS, so `b""`, `{}` and `[]` are values to store, not deletions.
    """
    if value.__class__ is dict:  # the hot path: Baileys' key values are objects
        return False
    if value is None or value is False:
        return True
    if value is True:
        return False
    if isinstance(value, int):
        return value == 0
    if isinstance(value, float):
        return value == 0.0 or math.isnan(value)
    if isinstance(value, str):
        return value == ""
    return False


def validate_key_query(company_id: object, key_type: object,
                       ids: object) -> tuple[str, str, list[str]]:
    """A keys.get's arguments checked before any I/O: (company, type, ids as a list)."""
    company = validate_company_id(company_id)
    validate_key_type(key_type)
    id_list = ids if isinstance(ids, list) else list(ids)  # type: ignore[call-overload]
    for key_id in id_list:
        validate_key_id(key_id)
    return company, key_type, id_list  # type: ignore[return-value]
