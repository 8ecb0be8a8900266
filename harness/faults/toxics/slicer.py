"""slicer: splits each chunk into writes of about `average_size` ± `size_variation` bytes,
`delay` µs apart, to exercise clients' handling of partial reads.

Slice points follow Toxiproxy's recursive halving (no bias towards small slices at the ends);
the random variation comes from the link's seeded generator.
"""

from __future__ import annotations

import dataclasses
import random
from typing import ClassVar

from harness.faults.toxics.base import Toxic
from harness.faults.toxics.stub import Stub


@dataclasses.dataclass
class SlicerToxic(Toxic):
    type_name: ClassVar[str] = "slicer"
    go_struct: ClassVar[str] = "SlicerToxic"
    go_int: ClassVar[str] = "int"

    average_size: int = 0  # bytes
    size_variation: int = 0  # bytes
    delay: int = 0  # µs between slices

    def slice_sizes(self, total: int, rng: random.Random) -> list[int]:
        """Sizes of the slices of a `total`-byte chunk, in order (they sum to `total`)."""
        sizes: list[int] = []
        stack = [(0, total)]
        while stack:
            start, end = stack.pop()
            size = end - start
            if size <= 1 or size - self.average_size <= self.size_variation:
                sizes.append(size)
                continue
            mid = start + size // 2
            if self.size_variation > 0:
                mid += rng.randrange(self.size_variation * 2) - self.size_variation
            mid = min(max(mid, start + 1), end - 1)  # always progress
            stack.append((mid, end))
            stack.append((start, mid))
        return sizes

    async def pipe(self, stub: Stub) -> None:
        pause = self.delay / 1_000_000
        while True:
            chunk = await stub.take()
            if chunk is None:
                stub.close()
                return
            for size in self.slice_sizes(len(chunk.data), stub.rng):
                stub.forward_part(size)
                if pause > 0:
                    await stub.sleep_until(stub.now() + pause)
