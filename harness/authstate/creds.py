"""Fresh creds with the exact shape of Baileys' `initAuthCreds()` (lib/Utils/auth-utils.js).

Key order matches Baileys (JSON text of our creds lines up with Baileys' own), and the keys
Baileys sets to `undefined` (pairingCode, lastPropHash, routingInfo, additionalData) are omitted,
as `JSON.stringify` drops them.
"""

from __future__ import annotations

import base64
import os
from typing import Any

from harness.authstate import curve


def generate_registration_id() -> int:
    """Baileys' `generateRegistrationId()`: `Uint16Array.from(randomBytes(2))[0] & 16383`.

    `Uint16Array.from` copies each *byte* into its own element, so Baileys really returns the
    first random byte: 0..255. We reproduce that distribution rather than the intended 14 bits.
    """
    return os.urandom(1)[0] & 16383


def signed_key_pair(identity_key_pair: curve.KeyPair, key_id: int) -> dict[str, Any]:
    """Baileys' `signedKeyPair`: a pre-key signed (over its 0x05-prefixed public key) by the
    identity key."""
    pre_key = curve.generate_key_pair()
    signature = curve.sign(identity_key_pair["private"], curve.signal_public_key(pre_key["public"]))
    return {"keyPair": pre_key, "signature": signature, "keyId": key_id}


def init_auth_creds() -> dict[str, Any]:
    """New, unpaired creds for a company seen for the first time."""
    identity_key = curve.generate_key_pair()
    return {
        "noiseKey": curve.generate_key_pair(),
        "pairingEphemeralKeyPair": curve.generate_key_pair(),
        "signedIdentityKey": identity_key,
        "signedPreKey": signed_key_pair(identity_key, 1),
        "registrationId": generate_registration_id(),
        "advSecretKey": base64.b64encode(os.urandom(32)).decode("ascii"),
        "processedHistoryMessages": [],
        "nextPreKeyId": 1,
        "firstUnuploadedPreKeyId": 1,
        "accountSyncCounter": 0,
        "accountSettings": {"unarchiveChats": False},
        "registered": False,
    }


def verify_signed_pre_key(creds: dict[str, Any]) -> bool:
    """Does `creds.signedPreKey.signature` sign the pre-key under `creds.signedIdentityKey`?

    What WhatsApp checks when the pre-key is uploaded; False on a missing or malformed part.
    """
    try:
        pre_key = creds["signedPreKey"]
        message = curve.signal_public_key(pre_key["keyPair"]["public"])
        return curve.verify(creds["signedIdentityKey"]["public"], message, pre_key["signature"])
    except (KeyError, TypeError, ValueError):
        return False
