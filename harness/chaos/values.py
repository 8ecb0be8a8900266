"""Baileys-shaped values for the chaos workload, each unique, and their digests.

Every value the workload writes carries a unique token (in a field Baileys has anyway: a
session's base key, a pre-key's private half, a sender key's JSON, a creds' `lastPropHash`), so
a value read back names exactly one write: the checker can tell a stale read from a fresh one
and a value never written from any other. The history stores only `digest(value)`, never the
value: no key material leaves the workload.

How values are digested (typed: bytes never digest like a Buffer-shaped object) is
harness.digests, re-exported here for the workload's users.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import random
from typing import Any

import orjson

from harness.authstate.creds import init_auth_creds
from harness.digests import (  # re-exported: the workload's values digest this way
    BASE64_STRING,
    BUFFER_OBJECT,
    BYTES,
    NUMBER_ARRAY,
    NUMBERED_OBJECT,
    canonical,
    decoded,
    digest,
    form_of,
    is_fresh,
)

__all__ = ["BASE64_STRING", "BUFFER_OBJECT", "BYTES", "KEY_TYPES", "NUMBERED_OBJECT",
           "NUMBER_ARRAY", "ValueFactory", "canonical", "decoded", "digest", "form_of",
           "is_fresh"]

KEY_TYPES = ("session", "pre-key", "sender-key", "sender-key-memory", "identity-key")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class ValueFactory:
    """Makes the values of one workload; tokens are unique across the factory's life (the
    run tag separates factories of one run, e.g. a child process and its successor)."""

    def __init__(self, run_tag: str, seed: int = 0) -> None:
        self.run_tag = run_tag
        self._rng = random.Random(seed)
        self._counter = itertools.count(1)

    def token(self) -> str:
        return f"{self.run_tag}-{next(self._counter)}"

    def _bytes(self, n: int) -> bytes:
        return self._rng.randbytes(n)

    @staticmethod
    def _token_bytes(token: str, n: int = 32) -> bytes:
        return hashlib.sha256(token.encode()).digest()[:n]

    # -- keys ------------------------------------------------------------------------------------
    def session(self, target_bytes: int | None = None) -> dict[str, Any]:
        """A libsignal session record as Baileys stores it: `{_sessions: {baseKey: {...}},
        version}`; ~0.9 KB new, up to ~8 KB after use (chains with cached message keys)."""
        rng = self._rng
        size = target_bytes if target_bytes is not None else rng.choice(
            (900, 1500, 2500, 4000, 6000, 8000))
        token = self.token()
        base_key = _b64(b"\x05" + self._token_bytes(token))
        now_ms = 1_700_000_000_000 + rng.randrange(10**9)
        chains: dict[str, Any] = {}
        record = {"_sessions": {base_key: {
            "registrationId": rng.randrange(1, 16384),
            "currentRatchet": {
                "ephemeralKeyPair": {"pubKey": _b64(b"\x05" + self._bytes(32)),
                                     "privKey": _b64(self._bytes(32))},
                "lastRemoteEphemeralKey": _b64(b"\x05" + self._bytes(32)),
                "previousCounter": rng.randrange(100),
                "rootKey": _b64(self._bytes(32)),
            },
            "indexInfo": {"baseKey": base_key, "baseKeyType": rng.choice((1, 2)), "closed": -1,
                          "used": now_ms, "created": now_ms - rng.randrange(10**8),
                          "remoteIdentityKey": _b64(b"\x05" + self._bytes(32))},
            "chains": chains,
        }}, "version": "v1"}
        # The record without chains is ~630 bytes; a chain adds ~150, each cached message
        # key ~55 more. A new session has its sending chain and no cached keys.
        remaining = size - 630
        while remaining > 0 or not chains:
            keys = min(40, max(0, (remaining - 150) // 55))
            counter = rng.randrange(1000)
            chains[_b64(b"\x05" + self._bytes(32))] = {
                "chainKey": {"counter": counter + keys, "key": _b64(self._bytes(32))},
                "chainType": rng.choice((1, 2)),
                "messageKeys": {str(counter + i): _b64(self._bytes(32)) for i in range(keys)},
            }
            remaining -= 150 + keys * 55
        return record

    def pre_key(self) -> dict[str, bytes]:
        return {"public": self._bytes(32),
                "private": self._token_bytes(self.token())}

    def pre_keys(self, first_id: int, count: int) -> dict[str, dict[str, bytes]]:
        return {str(i): self.pre_key() for i in range(first_id, first_id + count)}

    def sender_key(self) -> bytes:
        """Bytes holding UTF-8 JSON of a sender key record (one state)."""
        rng = self._rng
        state = [{"senderKeyId": rng.randrange(2**31),
                  "senderChainKey": {"iteration": rng.randrange(10_000),
                                     "seed": _b64(self._bytes(32))},
                  "senderSigningKey": {"public": _b64(b"\x05" + self._bytes(32))},
                  "senderMessageKeys": [],
                  "token": self.token()}]
        return orjson.dumps(state)

    def sender_key_memory(self, devices: list[str]) -> dict[str, bool]:
        """`{deviceJid: true}` for the devices a group message was sent to (+ one unique)."""
        memory = dict.fromkeys(devices, True)
        memory[f"{self.token()}:0@lid"] = True
        return memory

    def identity_key(self) -> bytes:
        return b"\x05" + self._token_bytes(self.token())

    # -- creds -----------------------------------------------------------------------------------
    def paired_creds(self, phone: str) -> dict[str, Any]:
        """Creds as Baileys holds them after pairing (`me`, `account`, `signalIdentities`,
        `registered: true`), ~2 KB."""
        creds = init_auth_creds()
        device_jid = f"{phone}:{self._rng.randrange(1, 60)}@s.whatsapp.net"
        creds.update({
            "me": {"id": device_jid, "name": "chaos",
                   "lid": f"{self._rng.randrange(10**14)}:1@lid"},
            "account": {"details": self._bytes(80), "accountSignatureKey": self._bytes(32),
                        "accountSignature": self._bytes(64), "deviceSignature": self._bytes(64)},
            "signalIdentities": [{"identifier": {"name": device_jid, "deviceId": 0},
                                  "identifierKey": b"\x05" + self._bytes(32)}],
            "platform": "android",
            "routingInfo": self._bytes(24),
            "lastAccountSyncTimestamp": 1_700_000_000 + self._rng.randrange(10**7),
            "myAppStateKeyId": _b64(self._bytes(6)),
            "registered": True,
        })
        self.touch_creds(creds)
        return creds

    def touch_creds(self, creds: dict[str, Any]) -> None:
        """A creds.update: what Baileys changes on a routine save (counters, hash), in place."""
        creds["accountSyncCounter"] = int(creds.get("accountSyncCounter", 0)) + 1
        creds["lastPropHash"] = self.token()
