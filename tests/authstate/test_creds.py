"""init_auth_creds has the exact shape of Baileys' initAuthCreds() and a real signed pre-key."""

from __future__ import annotations

import base64
import copy
import json
from typing import Any

import pytest

from harness.authstate import codec, curve
from harness.authstate.creds import init_auth_creds, verify_signed_pre_key

BAILEYS_CREDS_KEYS = [  # initAuthCreds() order, minus the keys it sets to undefined
    "noiseKey", "pairingEphemeralKeyPair", "signedIdentityKey", "signedPreKey", "registrationId",
    "advSecretKey", "processedHistoryMessages", "nextPreKeyId", "firstUnuploadedPreKeyId",
    "accountSyncCounter", "accountSettings", "registered",
]


def shape(value: Any) -> Any:
    """A value's structure: key order, JSON types, byte lengths (not the random contents)."""
    if isinstance(value, bytes):
        return ("bytes", len(value))
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def _clamped(private: bytes) -> bool:
    return private[0] & 7 == 0 and private[31] & 0xC0 == 0x40


def test_fresh_creds_have_baileys_keys_types_and_lengths() -> None:
    creds = init_auth_creds()
    assert list(creds) == BAILEYS_CREDS_KEYS
    for name in ("noiseKey", "pairingEphemeralKeyPair", "signedIdentityKey"):
        assert shape(creds[name]) == [("private", ("bytes", 32)), ("public", ("bytes", 32))]
        assert curve.public_key(creds[name]["private"]) == creds[name]["public"]
        assert _clamped(creds[name]["private"])
    assert shape(creds["signedPreKey"]) == [
        ("keyPair", [("private", ("bytes", 32)), ("public", ("bytes", 32))]),
        ("signature", ("bytes", 64)), ("keyId", "int")]
    assert creds["signedPreKey"]["keyId"] == 1
    assert 0 <= creds["registrationId"] <= 255  # Baileys' generateRegistrationId, see creds.py
    assert len(base64.b64decode(creds["advSecretKey"], validate=True)) == 32
    assert creds["processedHistoryMessages"] == []
    assert (creds["nextPreKeyId"], creds["firstUnuploadedPreKeyId"]) == (1, 1)
    assert creds["accountSyncCounter"] == 0
    assert creds["accountSettings"] == {"unarchiveChats": False}
    assert creds["registered"] is False


def test_every_call_makes_new_keys() -> None:
    a, b = init_auth_creds(), init_auth_creds()
    for name in ("noiseKey", "pairingEphemeralKeyPair", "signedIdentityKey"):
        assert a[name]["private"] != b[name]["private"]
    assert a["advSecretKey"] != b["advSecretKey"]


def test_signed_pre_key_verifies_and_any_change_breaks_it() -> None:
    creds = init_auth_creds()
    assert verify_signed_pre_key(creds)
    for path in (("signedPreKey", "signature"), ("signedPreKey", "keyPair", "public"),
                 ("signedIdentityKey", "public")):
        broken = copy.deepcopy(creds)
        node = broken
        for part in path[:-1]:
            node = node[part]
        flipped = bytearray(node[path[-1]])
        flipped[3] ^= 0x01
        node[path[-1]] = bytes(flipped)
        assert not verify_signed_pre_key(broken), path


def test_verify_signed_pre_key_is_false_for_incomplete_creds() -> None:
    assert not verify_signed_pre_key({})
    creds = init_auth_creds()
    creds["signedPreKey"]["signature"] = b"short"
    assert not verify_signed_pre_key(creds)


def test_fresh_creds_round_trip_through_the_codec() -> None:
    creds = init_auth_creds()
    assert codec.loads(codec.dumps_for_postgres(creds)) == creds


BAILEYS_CREDS_SCRIPT = """
import { createRequire } from 'module'
import { initAuthCreds } from '@whiskeysockets/baileys/lib/Utils/auth-utils.js'
import { BufferJSON } from '@whiskeysockets/baileys/lib/Utils/generics.js'
const require = createRequire(import.meta.url)
const curve = require('libsignal/src/curve.js')
const ours = JSON.parse(require('fs').readFileSync(0, 'utf8')).map(
  (text) => JSON.parse(text, BufferJSON.reviver))
const prefixed = (k) => Buffer.concat([Buffer.from([5]), k])
console.log(JSON.stringify({
  baileys: JSON.stringify(initAuthCreds(), BufferJSON.replacer),
  // libsignal's own check of each of our signed pre-keys (its boolean, not Baileys' Curve.verify)
  verified: ours.map((c) => curve.verifySignature(prefixed(c.signedIdentityKey.public),
    prefixed(c.signedPreKey.keyPair.public), c.signedPreKey.signature)),
  buffers: ours.map((c) => [c.noiseKey.private, c.signedPreKey.signature].every(Buffer.isBuffer)),
}))
"""


@pytest.mark.interop
def test_creds_match_real_initAuthCreds_and_libsignal_verifies_them(baileys_node) -> None:
    ours = [init_auth_creds() for _ in range(5)]
    tampered = copy.deepcopy(ours[0])
    tampered["signedPreKey"]["signature"] = bytes(64)
    texts = [codec.dumps(c) for c in [*ours, tampered]]
    result = json.loads(baileys_node.run_script(BAILEYS_CREDS_SCRIPT,
                                                input=json.dumps(texts)).stdout)
    baileys = codec.loads(result["baileys"])
    assert shape(baileys) == shape(ours[0])  # same keys, order, types and byte lengths
    assert isinstance(baileys["advSecretKey"], str)
    assert len(base64.b64decode(baileys["advSecretKey"])) == 32
    assert all(_clamped(baileys[k]["private"])
               for k in ("noiseKey", "pairingEphemeralKeyPair", "signedIdentityKey"))
    assert verify_signed_pre_key(baileys)  # our verifier accepts Baileys' own signature
    assert result["verified"] == [True] * 5 + [False]  # libsignal accepts ours, rejects a fake
    assert all(result["buffers"])  # BufferJSON revives our bytes as Buffers
