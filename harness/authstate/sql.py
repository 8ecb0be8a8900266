"""Every statement the store and the maintenance code run on the auth-state tables.

Parameterized only, every one scoped by `company_id` except the listings. Values travel as JSON
text cast to jsonb and come back as `value::text`, so callers choose when (and whether) to
decode. Schema DDL lives in `schema.py`; the cleanup job's reporting queries in `cleanup.py`.
"""

from __future__ import annotations

from typing import Final

# -- keys ----------------------------------------------------------------------------------------
GET_KEYS: Final = ("SELECT key_id, value::text FROM whatsapp_keys "
                   "WHERE company_id = $1 AND key_type = $2 AND key_id = ANY($3::text[])")
"""($1 company, $2 type, $3 ids) -> rows (key_id, JSON text); missing ids have no row."""

_ON_CONFLICT = """
ON CONFLICT (company_id, key_type, key_id) DO UPDATE
SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
"""

UPSERT_KEYS: Final = """
INSERT INTO whatsapp_keys (company_id, key_type, key_id, value, updated_at, expires_at)
SELECT $1, t.key_type, t.key_id, t.value::jsonb, now(), now() + t.ttl * interval '1 second'
FROM unnest($2::text[], $3::text[], $4::text[], $5::int4[]) AS t(key_type, key_id, value, ttl)
""" + _ON_CONFLICT
"""Rows of several types: ($1 company, $2 types, $3 ids, $4 JSON texts, $5 TTL seconds)."""

UPSERT_KEYS_ONE_TYPE: Final = """
INSERT INTO whatsapp_keys (company_id, key_type, key_id, value, updated_at, expires_at)
SELECT $1, $2, t.key_id, t.value::jsonb, now(), now() + $3 * interval '1 second'
FROM unnest($4::text[], $5::text[]) AS t(key_id, value)
""" + _ON_CONFLICT
"""Rows of one type (the common case: 812 pre-keys, a batch of sessions): type and TTL are
scalars, so the server does less per row. ($1 company, $2 type, $3 TTL, $4 ids, $5 JSON texts)."""

DELETE_KEYS: Final = """
DELETE FROM whatsapp_keys
WHERE company_id = $1 AND (key_type, key_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))
"""
"""($1 company, $2 types, $3 ids)."""

CLEAR_KEYS: Final = "DELETE FROM whatsapp_keys WHERE company_id = $1"
COUNT_KEYS: Final = "SELECT count(*) FROM whatsapp_keys WHERE company_id = $1"
KEY_REFS: Final = ("SELECT key_type, key_id FROM whatsapp_keys "
                   "WHERE company_id = $1 ORDER BY key_type, key_id")
"""Every (type, id) of a company, sorted (streamed through a cursor by exports)."""
KEY_VALUES: Final = ("SELECT key_type, key_id, value::text FROM whatsapp_keys "
                     "WHERE company_id = $1 ORDER BY key_type, key_id")
"""Every (type, id, JSON text) of a company, sorted."""

# -- creds ---------------------------------------------------------------------------------------
GET_CREDS: Final = "SELECT creds::text FROM whatsapp_auth WHERE company_id = $1"
PUT_CREDS: Final = """
INSERT INTO whatsapp_auth (company_id, creds, updated_at) VALUES ($1, $2::jsonb, now())
ON CONFLICT (company_id) DO UPDATE SET creds = EXCLUDED.creds, updated_at = EXCLUDED.updated_at
"""
"""($1 company, $2 JSON text): the whole blob, as Baileys' saveCreds writes it."""
HAS_CREDS: Final = "SELECT EXISTS (SELECT 1 FROM whatsapp_auth WHERE company_id = $1)"
DELETE_CREDS: Final = "DELETE FROM whatsapp_auth WHERE company_id = $1"

# -- writes stamped by the caller ------------------------------------------------------------------
def _stamped(statement: str, param: int) -> str:
    return statement.replace("now()", f"to_timestamp(${param})")


UPSERT_KEYS_AT: Final = _stamped(UPSERT_KEYS, 6)
UPSERT_KEYS_ONE_TYPE_AT: Final = _stamped(UPSERT_KEYS_ONE_TYPE, 6)
PUT_CREDS_AT: Final = _stamped(PUT_CREDS, 3)
"""As above, with `updated_at` (and `expires_at`'s start) given by the caller in seconds since
the epoch as the last parameter instead of the server's `now()` at execution: a write that
reaches the server late (a straggler after a timeout) keeps the time it was sent, so a newer
write compared by `updated_at` (the resilient store's replay) is never taken for an older one."""

# -- companies and the server --------------------------------------------------------------------
LIST_COMPANIES: Final = ("SELECT company_id FROM whatsapp_auth UNION "
                         "SELECT DISTINCT company_id FROM whatsapp_keys ORDER BY 1")
PROBE: Final = ("SELECT pg_is_in_recovery(), "
                "current_setting('transaction_read_only') = 'on'")
"""One round trip: (in recovery, read-only). Either means the server cannot take writes."""
