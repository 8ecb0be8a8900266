"""limit_data: lets `bytes` bytes through in its direction, then closes the connection.

The count is per connection and survives chain changes while the toxic exists (Toxiproxy's
stateful toxic); removing the toxic forgets it.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from harness.faults.toxics.base import Toxic
from harness.faults.toxics.stub import Stub


@dataclasses.dataclass
class LimitState:
    transmitted: int = 0


@dataclasses.dataclass
class LimitDataToxic(Toxic):
    type_name: ClassVar[str] = "limit_data"
    go_struct: ClassVar[str] = "LimitDataToxic"

    bytes: int = 0

    def new_state(self) -> LimitState:
        return LimitState()

    async def pipe(self, stub: Stub) -> None:
        state: LimitState = stub.state  # type: ignore[assignment]
        while True:
            chunk = await stub.take()
            if chunk is None:
                stub.close()
                return
            remaining = max(self.bytes - state.transmitted, 0)
            size = len(chunk.data)
            if remaining < size:
                if remaining:
                    stub.forward_part(remaining)
                    state.transmitted += remaining
                stub.drop()
            else:
                stub.forward(chunk)
                state.transmitted += size
            if self.bytes - state.transmitted <= 0:
                stub.close()
                return
