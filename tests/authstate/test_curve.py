"""curve.py signs and derives keys exactly as libsignal-node / curve25519-js do.

Without node: known-answer vectors frozen from libsignal 7.0.0-rc14's deps. With node
(`interop`): live properties against the installed libsignal, many cases per node process.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.authstate import curve

# (private key, message, libsignal getPublicFromPrivateKey, libsignal calculateSignature), made
# with libsignal/src/curve.js from @whiskeysockets/baileys@7.0.0-rc14's install.
_MSG4 = hashlib.sha512(b"m").digest() * 4
LIBSIGNAL_VECTORS = [
    (bytes(range(32)), b"abc",
     "058f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f",
     "0113fce18196d1d42f53f781fbedb0d5307f001d2d38cb820ec6a372ac614c66"
     "03dc3d81064fdf47e5eaf3b8280060c0a9c06a37e9f8818bed0b12fd0bc62e0e"),
    (bytes(32), b"",
     "052fe57da347cd62431528daac5fbb290730fff684afc4cfc2ed90995f58cb3b74",
     "1217449d83a47a5ff9b568ddaa1fd5ce79e470fbf9ff2bdd0e0004bac6e7dec9"
     "2201aa948592fefb94c6b0eb3e5ec4537661ff41adfb92b9ccbd6a139b63ae8e"),
    (b"\xff" * 32, b"\x05" + bytes(range(32)),
     "05847c0d2c375234f365e660955187a3735a0f7613d1609d3a6a4d8c53aeaa5a22",
     "bc16ee8fe9d842f48dce213018d934e5c4554f4b4173f4a70a583dc1ea00caba"
     "46d12bccf3f5a4e859360dc133dd98c6277703d807c381eab619643120f3b380"),
    (hashlib.sha256(b"authstate-harness").digest(), _MSG4,
     "05f9c42a4336722baf2f2ba14ed5094bc45dc244c4940857fcc2d4a0822cc03f56",
     "69224cb0429dff8277b8fc64965b57f8a87f049180b2b5ac4c7093876e85d37b"
     "823338db8a78606cd7a4bce7a599bf4fbc0bd225418ff9de7278b14dd914170f"),
]

keys32 = st.binary(min_size=32, max_size=32)
messages = st.binary(max_size=300)


@pytest.mark.parametrize(("private", "message", "public", "signature"), LIBSIGNAL_VECTORS,
                         ids=["counting-key", "zero-key-empty-msg", "ff-key", "sha-key-long-msg"])
def test_matches_frozen_libsignal_vectors(private: bytes, message: bytes, public: str,
                                          signature: str) -> None:
    assert curve.signal_public_key(curve.public_key(private)).hex() == public
    assert curve.sign(private, message).hex() == signature
    assert curve.verify(bytes.fromhex(public), message, bytes.fromhex(signature))


def test_generated_key_pair_has_baileys_shape() -> None:
    pair = curve.generate_key_pair()
    assert list(pair) == ["private", "public"]
    assert len(pair["private"]) == 32 and len(pair["public"]) == 32
    assert curve.public_key(pair["private"]) == pair["public"]


@settings(max_examples=25)
@given(private=keys32, message=messages)
def test_signature_verifies_and_rejects_tampering(private: bytes, message: bytes) -> None:
    public = curve.public_key(private)
    signature = curve.sign(private, message)
    assert curve.sign(private, message) == signature  # deterministic, like libsignal
    assert curve.verify(public, message, signature)
    assert curve.verify(curve.signal_public_key(public), message, signature)
    assert not curve.verify(public, message + b"\x00", signature)
    flipped = bytearray(signature)
    flipped[5] ^= 0x01
    assert not curve.verify(public, message, bytes(flipped))
    other = curve.public_key(hashlib.sha256(private).digest())
    assert not curve.verify(other, message, signature)


@pytest.mark.parametrize(("public", "signature"), [
    (b"\x05" * 31, bytes(64)), (b"\x06" + bytes(32), bytes(64)), (bytes(32), bytes(63)),
])
def test_malformed_lengths_raise_like_libsignal(public: bytes, signature: bytes) -> None:
    with pytest.raises(ValueError):
        curve.verify(public, b"m", signature)


def test_sign_rejects_a_short_private_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        curve.sign(bytes(31), b"m")


LIBSIGNAL_WORKER = """
import { serve } from './worker-prelude.mjs'
import { createRequire } from 'module'
const require = createRequire(import.meta.url)
const curve = require('libsignal/src/curve.js')
const hex = (h) => Buffer.from(h, 'hex')
serve({
  // Each returns what libsignal itself computes; verifySignature's boolean is returned as is
  // (Baileys' Curve.verify wraps it and ignores that boolean, so it cannot be used here).
  public: ({ priv }) => curve.getPublicFromPrivateKey(hex(priv)).toString('hex'),
  sign: ({ priv, msg }) => curve.calculateSignature(hex(priv), hex(msg)).toString('hex'),
  verify: ({ pub, msg, sig }) => curve.verifySignature(hex(pub), hex(msg), hex(sig)),
})
"""


@pytest.fixture(scope="module")
def libsignal(baileys_node):
    with baileys_node.start_worker(LIBSIGNAL_WORKER) as worker:
        yield worker


@pytest.mark.interop
@settings(max_examples=60)
@given(private=keys32, message=messages)
def test_libsignal_agrees_on_keys_and_signatures(libsignal, private: bytes,
                                                 message: bytes) -> None:
    ours_public = curve.public_key(private)
    ours_sig = curve.sign(private, message)
    # (c) our X25519 public key is libsignal's, minus the 0x05 prefix
    assert libsignal.request("public", priv=private.hex()) == "05" + ours_public.hex()
    # (b) libsignal's deterministic signature is byte-identical to ours
    assert libsignal.request("sign", priv=private.hex(), msg=message.hex()) == ours_sig.hex()
    # (a) libsignal verifies our signature, and rejects it once tampered (negative control)
    pub33 = curve.signal_public_key(ours_public).hex()
    assert libsignal.request("verify", pub=pub33, msg=message.hex(), sig=ours_sig.hex()) is True
    tampered = bytearray(ours_sig)
    tampered[40] ^= 0x80
    assert libsignal.request("verify", pub=pub33, msg=message.hex(),
                             sig=bytes(tampered).hex()) is False
    assert not curve.verify(ours_public, message, bytes(tampered))


@pytest.mark.interop
def test_libsignal_verifies_signatures_of_fresh_key_pairs(libsignal) -> None:
    """Key pairs from `cryptography` (as creds use them), not only Hypothesis' bytes."""
    for size in (0, 1, 33, 1000):
        pair = curve.generate_key_pair()
        message = hashlib.sha256(pair["public"]).digest() * (size // 32) + b"x" * (size % 32)
        signature = curve.sign(pair["private"], message)
        assert libsignal.request("verify", pub=curve.signal_public_key(pair["public"]).hex(),
                                 msg=message.hex(), sig=signature.hex()) is True


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=2**260))
def test_the_base_point_table_multiplies_as_double_and_add(scalar: int) -> None:
    """The fixed-base table signatures use gives the very point plain double-and-add does
    (scalars past 256 bits included)."""
    assert curve._encode(curve._mul_base(scalar)) == curve._encode(curve._mul(scalar, curve._B))
