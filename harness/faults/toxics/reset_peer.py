"""reset_peer: on the first data (or EOF) after it applies, waits `timeout` ms, then resets
both sockets with TCP RST (SO_LINGER 0), so the client and the upstream see ECONNRESET. The
data that triggered it and anything after is discarded.

Both sockets, whichever the direction, as in Toxiproxy: its link.go Start sets SO_LINGER 0 on
the source and the destination of a link whose chain holds a reset_peer; the toxic closes the
link's output, the link closes its destination and the paired link then closes the other
socket. Toxiproxy only sets the linger when a connection starts, so a reset_peer added to an
already open connection closes it there with FIN; we reset open connections too (documented in
harness/faults/README.md under known differences).
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
