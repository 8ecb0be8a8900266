"""What the store benchmarks write and compare against: Baileys-shaped values, the raw asyncpg
statements of the baseline side, and how many rounds to run (environment-tunable).

Shared by every benchmark that compares a store with raw asyncpg or with another store, so
they all measure the same rows and the same baseline.
"""

from __future__ import annotations

import base64
import os

ROUNDS = int(os.environ.get("AUTHSTATE_BENCH_ROUNDS", "30"))
POINT_CALLS = int(os.environ.get("AUTHSTATE_BENCH_POINT_CALLS", "3000"))

RAW_UPSERT = """
INSERT INTO whatsapp_keys (company_id, key_type, key_id, value, updated_at, expires_at)
SELECT $1, 'pre-key', t.id, t.v::jsonb, now(), now() + interval '7 days'
FROM unnest($2::text[], $3::text[]) AS t(id, v)
ON CONFLICT (company_id, key_type, key_id) DO UPDATE
SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
"""
RAW_GET = ("SELECT key_id, value::text FROM whatsapp_keys "
           "WHERE company_id = $1 AND key_type = $2 AND key_id = ANY($3::text[])")


def pre_keys(n: int) -> dict[str, dict[str, bytes]]:
    """`n` pre-keys as Baileys uploads them on first connect (ids "1".."n", 32-byte halves)."""
    return {str(i): {"public": os.urandom(32), "private": os.urandom(32)} for i in range(1, n + 1)}


def _b64(n: int) -> str:
    return base64.b64encode(os.urandom(n)).decode()


def session_record(chains: int = 6, skipped_message_keys: int = 20) -> dict[str, object]:
    """A libsignal session record as Baileys v7 stores it (~8 KB with these defaults)."""
    return {"_sessions": {_b64(33): {
        "registrationId": 4242,
        "currentRatchet": {"ephemeralKeyPair": {"pubKey": _b64(33), "privKey": _b64(32)},
                           "lastRemoteEphemeralKey": _b64(33), "previousCounter": 3,
                           "rootKey": _b64(32)},
        "indexInfo": {"baseKey": _b64(33), "baseKeyType": 1, "closed": -1,
                      "used": 1_700_000_000_000, "created": 1_700_000_000_000,
                      "remoteIdentityKey": _b64(33)},
        "_chains": {_b64(33): {"chainKey": {"counter": 40, "key": _b64(32)}, "chainType": 1,
                               "messageKeys": {str(i): _b64(32)
                                               for i in range(skipped_message_keys)}}
                    for _ in range(chains)}}},
        "version": "v1"}
