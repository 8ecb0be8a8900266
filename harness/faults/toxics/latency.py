"""latency: every chunk leaves `latency` ± `jitter` ms after it entered the proxy.

Delays are measured from the chunk's arrival (as in Toxiproxy), so chunks are pipelined: a burst
is delayed once, not once per chunk. Jitter is uniform in [-jitter, +jitter) and drawn from the
link's seeded generator, so `--seed` makes it reproducible.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from harness.faults.toxics.base import Toxic
from harness.faults.toxics.stub import Stub


@dataclasses.dataclass
class LatencyToxic(Toxic):
    type_name: ClassVar[str] = "latency"
    go_struct: ClassVar[str] = "LatencyToxic"

    latency: int = 0  # ms
    jitter: int = 0  # ms

    def delay_ms(self, stub: Stub) -> int:
        jitter = self.jitter
        if jitter > 0:
            return self.latency + stub.rng.randrange(2 * jitter) - jitter
        return self.latency

    async def pipe(self, stub: Stub) -> None:
        while True:
            chunk = await stub.take()
            if chunk is None:
                stub.close()
                return
            due = chunk.ts + self.delay_ms(stub) / 1000
            await stub.sleep_until(due)
            chunk.ts = max(chunk.ts, due)  # a following latency toxic adds its own delay
            stub.forward(chunk)
