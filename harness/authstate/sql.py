"""Every statement the store and the maintenance code run on the auth-state tables.

Parameterized only, every one scoped by `company_id` except the listings. Values travel as JSON
text cast to jsonb and come back as `value::text`, so callers choose when (and whether) to
decode. Schema DDL lives in `schema.py`; the cleanup job's reporting queries in `cleanup.py`.
"""

from __future__ import annotations

import hashlib
from typing import Final

# -- keys ----------------------------------------------------------------------------------------
GET_KEYS: Final = ("SELECT key_id, value::text FROM whatsapp_keys "
                   "WHERE company_id = $1 AND key_type = $2 AND key_id = ANY($3::text[])")
"""($1 company, $2 type, $3 ids) -> rows (key_id, JSON text); missing ids have no row."""

# Writers of one company's keys are serialized by a transaction-level advisory lock on the
# company (`lock_key`), taken before any row lock, so two writers never hold row locks of one
# company at the same time and cannot deadlock, whatever rows they touch in whatever order (a call
# upserting some sessions and deleting others used to deadlock against one doing the reverse).
# - Upsert-only writes take it inside their one statement (a CTE the rows wait for): an upsert
#   sees rows committed after its snapshot (ON CONFLICT locks the newest version), so waiting for
#   the lock mid-statement changes nothing it decides.
# - Writes that delete must take it in an earlier statement of their transaction (`begin_locked`):
#   a DELETE only sees rows of its snapshot, taken when the statement starts; a DELETE that waited
#   for the lock in its own statement would miss rows the previous holder inserted (measured: the
#   one-statement form left pre-keys behind that a later call had deleted).
# - Writers of several companies (the resilient store's replay) take the locks of all of them
#   first, in ascending key order (`LOCK_COMPANIES`).
# The lock is held until the transaction ends. Keys come from `lock_key` (Python), so the
# transaction's opening statement is built from integers only, never from caller text.
COMPANY_LOCK_NAMESPACE: Final = 0x4B455953  # "KEYS": first key of pg_advisory_xact_lock(int, int)


def lock_key(company_id: str) -> int:
    """The company's advisory lock key (int4). Collisions only make two companies share a lock."""
    digest = hashlib.blake2b(company_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


def begin_locked(key: int | None, statement_timeout_ms: int | None = None) -> str:
    """Simple-protocol text opening a transaction (one round trip): optionally set the statement
    timeout for this transaction only (`SET LOCAL`, for poolers in transaction mode) and take a
    company's lock (`lock_key`). Integers only go in."""
    parts = ["BEGIN"]
    if statement_timeout_ms is not None:
        parts.append(f"SET LOCAL statement_timeout = {int(statement_timeout_ms)}")
    if key is not None:
        parts.append(f"SELECT pg_advisory_xact_lock({COMPANY_LOCK_NAMESPACE}, {int(key)})")
    return "; ".join(parts)


LOCK_COMPANY: Final = f"SELECT pg_advisory_xact_lock({COMPANY_LOCK_NAMESPACE}, $1::int4)"
"""($1 `lock_key`): a company's key-write lock until the transaction ends (callers writing keys
with their own statements in a transaction: imports, cleanup). Take it before any other
statement of the transaction that deletes keys."""

LOCK_COMPANIES: Final = f"""
SELECT count(pg_advisory_xact_lock({COMPANY_LOCK_NAMESPACE}, s.k))
FROM (SELECT DISTINCT k FROM unnest($1::int4[]) AS k ORDER BY 1) AS s
"""
"""($1 `lock_key`s): the key-write locks of several companies, in ascending key order."""

_COMPANY_LOCK = f"""WITH company_lock AS MATERIALIZED (
    SELECT pg_advisory_xact_lock({COMPANY_LOCK_NAMESPACE}, $6::int4)
)"""
_AFTER_LOCK = "(SELECT count(*) FROM company_lock) = 1"

_ON_CONFLICT = """
ON CONFLICT (company_id, key_type, key_id) DO UPDATE
SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
"""

_UPSERT_ROWS = """
INSERT INTO whatsapp_keys (company_id, key_type, key_id, value, updated_at, expires_at)
SELECT $1, t.key_type, t.key_id, t.value::jsonb, now(), now() + t.ttl * interval '1 second'
FROM unnest($2::text[], $3::text[], $4::text[], $5::int4[]) AS t(key_type, key_id, value, ttl)
"""

UPSERT_KEYS: Final = _COMPANY_LOCK + _UPSERT_ROWS + f"WHERE {_AFTER_LOCK}" + _ON_CONFLICT
"""Rows of several types: ($1 company, $2 types, $3 ids, $4 JSON texts, $5 TTL seconds,
$6 lock key); takes the company's lock first."""

UPSERT_KEYS_ONE_TYPE: Final = _COMPANY_LOCK + f"""
INSERT INTO whatsapp_keys (company_id, key_type, key_id, value, updated_at, expires_at)
SELECT $1, $2, t.key_id, t.value::jsonb, now(), now() + $3 * interval '1 second'
FROM unnest($4::text[], $5::text[]) AS t(key_id, value)
WHERE {_AFTER_LOCK}
""" + _ON_CONFLICT
"""Rows of one type (the common case: 812 pre-keys, a batch of sessions): type and TTL are
scalars, so the server does less per row. ($1 company, $2 type, $3 TTL, $4 ids, $5 JSON texts,
$6 lock key); takes the company's lock first."""

_DELETE_ROWS = """
DELETE FROM whatsapp_keys AS k USING unnest({types}::text[], {ids}::text[]) AS d(key_type, key_id)
WHERE k.company_id = $1 AND k.key_type = d.key_type AND k.key_id = d.key_id
"""

DELETE_KEYS: Final = _DELETE_ROWS.format(types="$2", ids="$3")
"""($1 company, $2 types, $3 ids). Run after the company's lock (`begin_locked`)."""

WRITE_KEYS: Final = ("WITH deleted AS (" + _DELETE_ROWS.format(types="$6", ids="$7") + ")"
                     + _UPSERT_ROWS + _ON_CONFLICT)
"""Upserts and deletes of one `keys.set` in one statement (Baileys' pkmsg write: a session
upsert and a pre-key delete): ($1 company, $2 types, $3 ids, $4 JSON texts, $5 TTL seconds,
$6 types to delete, $7 ids to delete). A call never names a row twice, so the two parts touch
different rows. Run after the company's lock (`begin_locked`). Status: the INSERT's."""

CLEAR_KEYS: Final = "DELETE FROM whatsapp_keys WHERE company_id = $1"
"""Run after the company's lock (`begin_locked`, `LOCK_COMPANY`)."""
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


UPSERT_KEYS_AT: Final = _stamped(UPSERT_KEYS, 7)
UPSERT_KEYS_ONE_TYPE_AT: Final = _stamped(UPSERT_KEYS_ONE_TYPE, 7)
WRITE_KEYS_AT: Final = _stamped(WRITE_KEYS, 8)
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
