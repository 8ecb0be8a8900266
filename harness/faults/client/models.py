"""Typed views of Toxiproxy's JSON objects (and of our event-log extension)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any


def split_listen(listen: str) -> tuple[str, int]:
    """`127.0.0.1:4312` -> ("127.0.0.1", 4312); `[::]:4312` -> ("::", 4312)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


@dataclasses.dataclass(frozen=True)
class Toxic:
    name: str
    type: str
    stream: str  # "upstream" (client -> server) | "downstream" (server -> client)
    toxicity: float
    attributes: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Toxic:
        return cls(name=data["name"], type=data["type"], stream=data["stream"],
                   toxicity=float(data.get("toxicity", 1.0)),
                   attributes=dict(data.get("attributes") or {}))


@dataclasses.dataclass(frozen=True)
class Proxy:
    name: str
    listen: str  # as the server reports it: the resolved address when port 0 was asked
    upstream: str
    enabled: bool
    toxics: tuple[Toxic, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Proxy:
        return cls(name=data["name"], listen=data["listen"], upstream=data["upstream"],
                   enabled=bool(data["enabled"]),
                   toxics=tuple(Toxic.from_json(t) for t in data.get("toxics") or ()))

    @property
    def listen_host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def listen_port(self) -> int:
        return split_listen(self.listen)[1]


@dataclasses.dataclass(frozen=True)
class FaultEvent:
    """One entry of the server's event log (extension; see harness/faults/README.md)."""

    seq: int
    type: str
    proxy: str
    monotonic: float  # server's CLOCK_MONOTONIC seconds (same clock as ours on one host)
    wall: float  # Unix time
    data: Mapping[str, Any]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultEvent:
        rest = {k: v for k, v in data.items()
                if k not in ("seq", "type", "proxy", "monotonic", "wall")}
        return cls(seq=data["seq"], type=data["type"], proxy=data["proxy"],
                   monotonic=data["monotonic"], wall=data["wall"], data=rest)
