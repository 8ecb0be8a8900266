"""bandwidth: paces the stream to `rate` KB/s (1 KB = 1000 B); rate 0 stalls it.

Same pacing as Toxiproxy: each chunk adds len/rate ms of debt; chunks larger than 100 ms of
data are sent in 100 ms slices; oversleeping is credited to the next chunk.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from harness.faults.toxics.base import Toxic
from harness.faults.toxics.stub import Stub

SLICE_SECONDS = 0.1


@dataclasses.dataclass
class BandwidthToxic(Toxic):
    type_name: ClassVar[str] = "bandwidth"
    go_struct: ClassVar[str] = "BandwidthToxic"

    rate: int = 0  # KB/s

    async def pipe(self, stub: Stub) -> None:
        debt = 0.0  # seconds of sending still owed
        while True:
            chunk = await stub.take()
            if chunk is None:
                stub.close()
                return
            if self.rate <= 0:
                await stub.wait_forever()  # the chunk stays current; a chain change frees it
            bytes_per_second = self.rate * 1000
            slice_bytes = self.rate * 100
            debt += len(chunk.data) / bytes_per_second
            while len(chunk.data) > slice_bytes:
                await stub.sleep_until(stub.now() + SLICE_SECONDS)
                stub.forward_part(slice_bytes)
                debt -= SLICE_SECONDS
            start = stub.now()
            await stub.sleep_until(start + debt)
            debt -= stub.now() - start
            stub.forward(chunk)
