"""reset_peer: on the first data (or EOF) after it applies, waits `timeout` ms, then resets
both sockets with TCP RST (SO_LINGER 0), so the client sees ECONNRESET. The data that
triggered it and anything after is discarded.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from harness.faults.toxics.base import Toxic
from harness.faults.toxics.stub import Stub


@dataclasses.dataclass
class ResetPeerToxic(Toxic):
    type_name: ClassVar[str] = "reset_peer"
    go_struct: ClassVar[str] = "ResetToxic"

    timeout: int = 0  # ms

    async def pipe(self, stub: Stub) -> None:
        await stub.take()
        stub.drop()
        stub.reset_connection(self.timeout / 1000)
        await stub.wait_forever()
