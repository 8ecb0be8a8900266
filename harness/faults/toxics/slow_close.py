"""slow_close: data flows normally; the close (EOF) is passed on `delay` ms late."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from harness.faults.toxics.base import Toxic
from harness.faults.toxics.stub import Stub


@dataclasses.dataclass
class SlowCloseToxic(Toxic):
    type_name: ClassVar[str] = "slow_close"
    go_struct: ClassVar[str] = "SlowCloseToxic"

    delay: int = 0  # ms

    async def pipe(self, stub: Stub) -> None:
        while True:
            chunk = await stub.take()
            if chunk is None:
                await stub.sleep_until(stub.now() + self.delay / 1000)
                stub.close()
                return
            stub.forward(chunk)
