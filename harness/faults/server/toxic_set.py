"""A proxy's toxics: one ordered chain per direction, edited through the API.

Validation order, defaults and messages follow Toxiproxy's ToxicCollection: stream defaults to
`downstream` (case-insensitive), toxicity to 1.0, name to `<type>_<stream>`; a bad stream is
checked before a bad type, a duplicate name (across both directions) is 409; update merges
`attributes` and `toxicity` and ignores everything else. Listing gives upstream toxics first,
then downstream ones, each in insertion order.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from harness.faults.gojson import (
    GoJSONError,
    field_float,
    field_str,
    is_missing,
    kind_of,
    lookup,
    require_object,
)
from harness.faults.server.api_errors import (
    BAD_REQUEST_BODY,
    INVALID_STREAM,
    INVALID_TOXIC_TYPE,
    TOXIC_ALREADY_EXISTS,
    TOXIC_NOT_FOUND,
    ApiError,
)
from harness.faults.toxics import TOXIC_TYPES, Toxic

Direction = Literal["upstream", "downstream"]
DIRECTIONS: tuple[Direction, Direction] = ("upstream", "downstream")


@dataclasses.dataclass
class ToxicDef:
    """One configured toxic. `stream` is kept as sent; `direction` is its parsed value."""

    name: str
    type: str
    stream: str
    direction: Direction
    toxicity: float
    toxic: Toxic

    def to_json(self) -> dict[str, Any]:
        return {"attributes": self.toxic.attributes(), "name": self.name, "type": self.type,
                "stream": self.stream, "toxicity": self.toxicity}


@dataclasses.dataclass(frozen=True)
class ChainChange:
    """What changed in one direction's chain, so links can move in-flight bytes correctly."""

    kind: Literal["add", "update", "remove", "reset"]
    name: str | None = None
    index: int = -1  # position of the toxic in the (old) chain for update/remove


_UPDATE_GO_TYPE = ('struct { Attributes interface {} "json:\\"attributes\\""; '
                   'Toxicity float32 "json:\\"toxicity\\"" }')


def parse_direction(stream: str) -> Direction | None:
    folded = stream.lower()
    return folded if folded in DIRECTIONS else None  # type: ignore[return-value]


def _bad_body(exc: GoJSONError) -> ApiError:
    return BAD_REQUEST_BODY.joined(str(exc))


class ToxicSet:
    def __init__(self) -> None:
        self.chains: dict[Direction, list[ToxicDef]] = {"upstream": [], "downstream": []}

    def all(self) -> list[ToxicDef]:
        return [*self.chains["upstream"], *self.chains["downstream"]]

    def find(self, name: str) -> ToxicDef | None:
        for toxic in self.all():
            if toxic.name == name:
                return toxic
        return None

    def get(self, name: str) -> ToxicDef:
        toxic = self.find(name)
        if toxic is None:
            raise TOXIC_NOT_FOUND
        return toxic

    def parse_new(self, body: Any) -> ToxicDef:
        """A toxic from a create request, validated but not added (also used at proxy create)."""
        try:
            obj = require_object(body, "toxics.ToxicWrapper")
            name = field_str(obj, "name", "", "ToxicWrapper")
            type_ = field_str(obj, "type", "", "ToxicWrapper")
            stream = field_str(obj, "stream", "downstream", "ToxicWrapper")
            toxicity = field_float(obj, "toxicity", 1.0, "ToxicWrapper")
            attributes = lookup(obj, "attributes")
            if is_missing(attributes):
                attributes = None
            if attributes is not None and not isinstance(attributes, dict):
                raise GoJSONError(f"json: cannot unmarshal {kind_of(attributes)} into Go struct "
                                  "field ToxicWrapper.attributes of type toxics.NoopToxic")
        except GoJSONError as exc:
            raise _bad_body(exc) from None
        direction = parse_direction(stream)
        if direction is None:
            raise INVALID_STREAM
        name = name or f"{type_}_{stream}"
        cls = TOXIC_TYPES.get(type_)
        if cls is None:
            raise INVALID_TOXIC_TYPE
        if self.find(name) is not None:
            raise TOXIC_ALREADY_EXISTS
        try:
            toxic = cls.from_attributes(attributes)
        except GoJSONError as exc:
            raise _bad_body(exc) from None
        return ToxicDef(name, type_, stream, direction, toxicity, toxic)

    def add(self, toxic: ToxicDef) -> ChainChange:
        if self.find(toxic.name) is not None:
            raise TOXIC_ALREADY_EXISTS
        self.chains[toxic.direction].append(toxic)
        return ChainChange("add", toxic.name, len(self.chains[toxic.direction]) - 1)

    def update(self, name: str, body: Any) -> tuple[ToxicDef, ChainChange]:
        """Merge `attributes` and `toxicity` from `body` into toxic `name`."""
        current = self.get(name)
        try:
            obj = require_object(body, _UPDATE_GO_TYPE)
            toxicity = field_float(obj, "toxicity", current.toxicity, "ToxicWrapper")
            attributes = lookup(obj, "attributes")
            toxic = type(current.toxic).from_attributes(
                None if is_missing(attributes) else attributes, current.toxic)
        except GoJSONError as exc:
            raise _bad_body(exc) from None
        chain = self.chains[current.direction]
        index = chain.index(current)
        updated = dataclasses.replace(current, toxicity=toxicity, toxic=toxic)
        chain[index] = updated
        return updated, ChainChange("update", name, index)

    def remove(self, name: str) -> tuple[ToxicDef, ChainChange]:
        toxic = self.get(name)
        chain = self.chains[toxic.direction]
        index = chain.index(toxic)
        del chain[index]
        return toxic, ChainChange("remove", name, index)

    def clear(self) -> None:
        for chain in self.chains.values():
            chain.clear()

    def to_json(self) -> list[dict[str, Any]]:
        return [t.to_json() for t in self.all()]
