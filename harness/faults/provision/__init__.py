"""The fault proxy provisioning chain: a Toxiproxy the scenarios can drive, whoever runs it.

`TOXIPROXY_URL` (a server you run) > `toxiproxy-server` on PATH > a Docker engine that answers
(ghcr.io/shopify/toxiproxy) > our embedded server (subprocess; `embedded-thread` in-process).
`AUTHSTATE_TOXIPROXY=external|binary|container|embedded|embedded-thread` forces one link.
Whatever we start is stopped on exit, on error and on Ctrl-C (and by a reaper if we are killed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator
from typing import Protocol

from harness.errors import ConfigError
from harness.faults.client import AsyncToxiproxyClient, ToxiproxyClient

log = logging.getLogger(__name__)

KINDS = ("external", "binary", "container", "embedded", "embedded-thread")
OURS = ("embedded", "embedded-thread")


class ToxiproxyServer(Protocol):
    kind: str
    url: str
    version: str

    def close(self) -> None: ...


@dataclasses.dataclass
class ProvisionedToxiproxy:
    """A running server, its kind and a client; `extensions` says if it is ours."""

    kind: str
    url: str
    version: str
    client: ToxiproxyClient
    seed: int | None = None
    pid: int | None = None  # the server process when we started it as one (CPU placement)

    @property
    def extensions(self) -> bool:
        """Event log, connections listing and create-time toxics are available."""
        return self.kind in OURS

    def async_client(self, timeout: float = 10.0) -> AsyncToxiproxyClient:
        """A new async client for this server (close it with `aclose()`)."""
        return AsyncToxiproxyClient(self.url, timeout=timeout)


def choose_kind(url: str | None, prefer: str | None = None) -> str:
    prefer = prefer or os.environ.get("AUTHSTATE_TOXIPROXY") or None
    if prefer is not None and prefer not in KINDS:
        raise ConfigError(f"unknown fault proxy provider {prefer!r}",
                          hint=f"use one of: {', '.join(KINDS)}")
    if prefer == "external" or (prefer is None and url):
        if not url:
            raise ConfigError("AUTHSTATE_TOXIPROXY=external needs a URL",
                              hint="set TOXIPROXY_URL=http://host:8474 or pass --toxiproxy-url")
        return "external"
    if prefer:
        return prefer
    from harness.faults.provision.binary import find_binary

    if find_binary():
        return "binary"
    from harness.infra.docker import docker_engine_available

    return "container" if docker_engine_available() else "embedded"


def start_server(kind: str, *, url: str | None = None, seed: int | None = None
                 ) -> ToxiproxyServer:
    if kind == "external":
        from harness.faults.provision.external import ExternalToxiproxy

        return ExternalToxiproxy(url or "")
    if kind == "binary":
        from harness.faults.provision.binary import BinaryToxiproxy

        return BinaryToxiproxy(seed=seed)
    if kind == "container":
        from harness.faults.provision.container import ContainerToxiproxy

        return ContainerToxiproxy()
    if kind == "embedded-thread":
        from harness.faults.provision.embedded import EmbeddedThread

        return EmbeddedThread(seed=seed)
    from harness.faults.provision.embedded import EmbeddedSubprocess

    return EmbeddedSubprocess(seed=seed)


@contextlib.contextmanager
def provision_toxiproxy(url: str | None = None, *, prefer: str | None = None,
                        seed: int | None = None, timeout: float = 10.0
                        ) -> Iterator[ProvisionedToxiproxy]:
    """Yield a running Toxiproxy and a client; stop whatever we started when the block ends."""
    url = url or os.environ.get("TOXIPROXY_URL") or None
    kind = choose_kind(url, prefer)
    server = start_server(kind, url=url, seed=seed)
    log.info("fault proxy: %s Toxiproxy %s at %s", kind, server.version, server.url)
    if seed is not None and kind not in OURS:
        log.warning("seed %d ignored: only the embedded server makes toxics reproducible", seed)
    client = ToxiproxyClient(server.url, timeout=timeout)
    try:
        process = getattr(server, "process", None)
        yield ProvisionedToxiproxy(kind=kind, url=server.url, version=server.version,
                                   client=client, seed=getattr(server, "seed", None),
                                   pid=process.pid if process is not None else None)
    finally:
        client.close()
        server.close()


__all__ = ["KINDS", "ProvisionedToxiproxy", "choose_kind", "provision_toxiproxy"]
