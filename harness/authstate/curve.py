"""Curve25519 keys and signatures exactly as Baileys (libsignal-node, curve25519-js) makes them.

Key pairs come from `cryptography` (X25519, OpenSSL): `{"private": 32 bytes, "public": 32 bytes}`,
the public key without libsignal's 0x05 type prefix, as Baileys' `Curve.generateKeyPair()`.

Signatures: libsignal's `calculateSignature` is curve25519-js `sign(sk, msg)` without random
bytes, i.e. TweetNaCl's `curve25519_sign` + `crypto_sign_direct`. That is a deterministic
Ed25519 variant on the X25519 private key (not RFC 8032 Ed25519, not randomized XEdDSA):

    a = clamp(sk); A = a*B; r = SHA512(a || M) mod L; R = r*B
    h = SHA512(R || A || M) mod L; s = r + h*a mod L; sig = R || s; sig[63] |= sign bit of A

`cryptography` has no API for signing with a given scalar, so the Ed25519 group arithmetic is
written here in pure Python (extended coordinates), with a fixed-base table for `scalar * B`:
~1 ms a signature, paid whenever creds are created (a chaos repetition pairs a hundred
companies). Not constant-time: fine for a test harness, do not reuse
this to sign with production keys on a shared machine.
"""

from __future__ import annotations

import hashlib
from typing import TypedDict

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

KEY_BUNDLE_TYPE = b"\x05"
"""libsignal's prefix of a serialized Curve25519 public key (33 bytes on the wire)."""

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = (-121665 * pow(121666, _P - 2, _P)) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


class KeyPair(TypedDict):
    private: bytes
    public: bytes


# Points are extended twisted-Edwards coordinates (X, Y, Z, T) with x = X/Z, y = Y/Z, xy = T/Z.
_Point = tuple[int, int, int, int]


def _add(p: _Point, q: _Point) -> _Point:
    # add-2008-hwcd-3 for a = -1 (complete: also doubles and handles the neutral element).
    x1, y1, z1, t1 = p
    x2, y2, z2, t2 = q
    a = (y1 - x1) * (y2 - x2) % _P
    b = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b - a, d - c, d + c, b + a
    return e * f % _P, g * h % _P, f * g % _P, e * h % _P


def _mul(scalar: int, p: _Point) -> _Point:
    result: _Point = (0, 1, 1, 0)
    while scalar:
        if scalar & 1:
            result = _add(result, p)
        p = _add(p, p)
        scalar >>= 1
    return result


def _encode(p: _Point) -> bytes:
    x, y, z, _ = p
    zinv = pow(z, _P - 2, _P)
    x, y = x * zinv % _P, y * zinv % _P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _recover_x(y: int, sign: int) -> int | None:
    """x for a y on the curve with the given parity, as TweetNaCl's `unpackneg` accepts it."""
    u = (y * y - 1) % _P
    v = (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    if v * x * x % _P != u:
        x = x * _SQRT_M1 % _P
        if v * x * x % _P != u:
            return None
    if (x & 1) != sign:
        x = (-x) % _P  # x == 0 with sign 1 stays 0: TweetNaCl accepts that encoding too
    return x


_BY = 4 * pow(5, _P - 2, _P) % _P
_BX = _recover_x(_BY, 0)
assert _BX is not None
_B: _Point = (_BX, _BY, 1, _BX * _BY % _P)


_WINDOWS = 64  # 4-bit windows of a 256-bit scalar
_base_table: list[list[_Point]] = []


def _mul_base(scalar: int) -> _Point:
    """`scalar * B` from a table of j * 16**i * B (built once, ~1k additions): 64 additions a
    call instead of ~380 by double-and-add. Every set of creds a workload pairs signs with
    two of these, and a chaos run pairs hundreds of companies per repetition."""
    if not _base_table:
        row_base = _B
        for _ in range(_WINDOWS):
            row: list[_Point] = [(0, 1, 1, 0)]
            for _ in range(15):
                row.append(_add(row[-1], row_base))
            _base_table.append(row)
            row_base = _add(row[15], row_base)  # 16 * row_base
    result: _Point = (0, 1, 1, 0)
    for i in range(_WINDOWS):
        nibble = (scalar >> (4 * i)) & 15
        if nibble:
            result = _add(result, _base_table[i][nibble])
    if scalar >> (4 * _WINDOWS):
        result = _add(result, _mul(scalar >> (4 * _WINDOWS) << (4 * _WINDOWS), _B))
    return result


def _clamp(private_key: bytes) -> bytes:
    a = bytearray(private_key)
    a[0] &= 248
    a[31] &= 127
    a[31] |= 64
    return bytes(a)


def _sha512_mod_l(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little") % _L


def _check_private(private_key: bytes) -> None:
    if not isinstance(private_key, (bytes, bytearray)) or len(private_key) != 32:
        raise ValueError("a Curve25519 private key is 32 bytes")


def generate_key_pair() -> KeyPair:
    """A fresh X25519 key pair shaped like Baileys' `Curve.generateKeyPair()` (private first)."""
    key = X25519PrivateKey.generate()
    return {"private": key.private_bytes_raw(), "public": key.public_key().public_bytes_raw()}


def public_key(private_key: bytes) -> bytes:
    """The 32-byte X25519 public key of `private_key` (libsignal's `getPublicFromPrivateKey`
    without the 0x05 prefix)."""
    _check_private(private_key)
    return X25519PrivateKey.from_private_bytes(bytes(private_key)).public_key().public_bytes_raw()


def signal_public_key(public: bytes) -> bytes:
    """The 33-byte libsignal form (0x05 prefix) of a public key; Baileys' `generateSignalPubKey`."""
    return bytes(public) if len(public) == 33 else KEY_BUNDLE_TYPE + bytes(public)


def sign(private_key: bytes, message: bytes) -> bytes:
    """libsignal `calculateSignature(privateKey, message)`: 64 bytes, deterministic."""
    _check_private(private_key)
    a_bytes = _clamp(private_key)
    a = int.from_bytes(a_bytes, "little")
    public_ed = _encode(_mul_base(a))
    sign_bit = public_ed[31] & 0x80
    message = bytes(message)
    r = _sha512_mod_l(a_bytes, message)
    big_r = _encode(_mul_base(r))
    h = _sha512_mod_l(big_r, public_ed, message)
    s = (r + h * a) % _L
    signature = bytearray(big_r + s.to_bytes(32, "little"))
    signature[63] |= sign_bit
    return bytes(signature)


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """libsignal `verifySignature`: does `signature` sign `message` under this X25519 key?

    `public_key` is 32 bytes or 33 bytes starting with 0x05; `signature` is 64 bytes. Malformed
    lengths raise ValueError, as libsignal throws for them; a wrong signature returns False.
    """
    public_key, signature, message = bytes(public_key), bytes(signature), bytes(message)
    if len(public_key) == 33 and public_key[:1] == KEY_BUNDLE_TYPE:
        public_key = public_key[1:]
    elif len(public_key) != 32:
        raise ValueError("a public key is 32 bytes, or 33 bytes starting with 0x05")
    if len(signature) != 64:
        raise ValueError("a signature is 64 bytes")
    # Montgomery u -> Edwards y = (u - 1) / (u + 1); the x sign bit travels in sig[63].
    u = int.from_bytes(public_key, "little") & (2**255 - 1)
    y = (u - 1) * pow((u + 1) % _P, _P - 2, _P) % _P
    sign_bit = signature[63] >> 7
    public_ed = (y | (sign_bit << 255)).to_bytes(32, "little")
    x = _recover_x(y, sign_bit)
    if x is None:
        return False
    big_r = signature[:32]
    # s is not required to be < L (TweetNaCl does not check): same acceptance set as libsignal.
    s = int.from_bytes(signature[32:], "little") & (2**255 - 1)
    h = _sha512_mod_l(big_r, public_ed, message)
    neg_a: _Point = ((-x) % _P, y, 1, (-x) * y % _P)
    return _encode(_add(_mul_base(s), _mul(h, neg_a))) == big_r
