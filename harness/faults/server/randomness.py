"""Reproducible randomness: every random stream is derived from one base seed and a name.

Toxiproxy seeds Go's global generator and then draws from it concurrently, so its `-seed` does not
make runs repeatable. Here each link (proxy, connection number, direction) gets its own generator
for toxicity rolls, and each toxic on a link its own for jitter/slicing, all derived by hashing
(base seed, names). The same seed and the same sequence of API calls and connections give the same
rolls and the same jitter, whatever the timing.
"""

from __future__ import annotations

import hashlib
import random
import secrets


class RandomSource:
    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed if seed is not None else secrets.randbits(63)
        self.explicit = seed is not None

    def derive(self, *names: object) -> random.Random:
        key = repr((self.seed, *names)).encode()
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return random.Random(int.from_bytes(digest, "big"))
