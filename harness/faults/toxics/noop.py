"""noop: passes everything through unchanged (registered by Toxiproxy too)."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from harness.faults.toxics.base import Toxic
from harness.faults.toxics.stub import Stub


@dataclasses.dataclass
class NoopToxic(Toxic):
    type_name: ClassVar[str] = "noop"
    go_struct: ClassVar[str] = "NoopToxic"

    async def pipe(self, stub: Stub) -> None:
        while True:
            chunk = await stub.take()
            if chunk is None:
                stub.close()
                return
            stub.forward(chunk)
