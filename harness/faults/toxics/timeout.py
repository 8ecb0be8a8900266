"""timeout: drops all data. timeout > 0: closes the connection after that many ms without data;
timeout 0: a black hole until removed. Removing it closes the connections in its direction
(Toxiproxy's Cleanup closes the stub on every link, including those whose toxicity roll left it
out), so clients see the outage end with a closed socket, as with a real one.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from harness.faults.toxics.base import Toxic
from harness.faults.toxics.stub import TIMED_OUT, Stub


@dataclasses.dataclass
class TimeoutToxic(Toxic):
    type_name: ClassVar[str] = "timeout"
    go_struct: ClassVar[str] = "TimeoutToxic"
    closes_on_removal: ClassVar[bool] = True

    timeout: int = 0  # ms

    async def pipe(self, stub: Stub) -> None:
        seconds = self.timeout / 1000
        while True:
            item = await (stub.take_within(seconds) if seconds > 0 else stub.take())
            if item is TIMED_OUT:
                stub.close()  # silent for `timeout` ms: close the connection
                return
            if item is None:
                stub.close()  # the source closed: pass the close on
                return
            stub.drop()
