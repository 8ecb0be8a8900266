"""The toxic contract: typed attributes decoded like Toxiproxy's, and one `pipe` coroutine.

A toxic type is a dataclass whose fields are its JSON attributes (all integers, defaulting to 0
as in Go, where a new toxic is a zero value). `from_attributes` decodes a request's
`attributes` object on top of an existing value, which gives Toxiproxy's update semantics
(merge: keys not sent keep their value) for free.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from harness.faults.gojson import GoJSONError, field_int, kind_of
from harness.faults.toxics.stub import Stub


@dataclasses.dataclass
class Toxic(ABC):
    """Base of every toxic type; subclasses are dataclasses with int fields only."""

    type_name: ClassVar[str]
    go_struct: ClassVar[str]  # Go struct name, used in decode error messages
    go_int: ClassVar[str] = "int64"  # Go type of the fields ("int" for slicer)
    # Removing the toxic closes the connections it was acting on (Toxiproxy's CleanupToxic).
    closes_on_removal: ClassVar[bool] = False

    @classmethod
    def from_attributes(cls, attributes: Any, base: Self | None = None) -> Self:
        """Decode `attributes` (a JSON object or null) over `base` (or the zero value)."""
        current = base if base is not None else cls()
        if attributes is None:
            return dataclasses.replace(current)
        if not isinstance(attributes, Mapping):
            raise GoJSONError(f"json: cannot unmarshal {kind_of(attributes)} into Go struct field "
                              f"ToxicWrapper.attributes of type toxics.{cls.go_struct}")
        changes = {
            f.name: field_int(attributes, f.name, getattr(current, f.name),
                              f"{cls.go_struct}.attributes", cls.go_int)
            for f in dataclasses.fields(cls)
        }
        return dataclasses.replace(current, **changes)

    def attributes(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    def new_state(self) -> object:
        """Per-connection state kept across chain changes while this toxic exists."""
        return None

    @abstractmethod
    async def pipe(self, stub: Stub) -> None:
        """Move chunks from `stub` input to output until the stream ends (then `stub.close()`)."""
