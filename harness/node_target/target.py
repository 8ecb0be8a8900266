"""The Python face of a Node.js store: the harness's target surface over one sidecar.

`await target.load(company)` calls the module's `useXAuthState(company)` in the sidecar and
returns a state whose `creds` is a Python copy of `state.creds`; `save_creds()` puts the copy
back into the module's creds object (in place, as Baileys' `Object.assign` does) and calls its
`saveCreds()`; `keys.get/set` call `state.keys.get/set` on the module's state. Each loaded
state is a handle in the sidecar, released when the Python state is garbage-collected.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import Any

from harness.node_target.errors import NodeSidecarCrashed
from harness.node_target.sidecar import Sidecar


class _Handle:
    """The sidecar's state handle; released when no Python object refers to it any more."""

    def __init__(self, sidecar: Sidecar, number: int) -> None:
        self.number = number
        weakref.finalize(self, sidecar.notify, "release", handle=number)


class NodeKeyStore:
    """`state.keys`: Baileys' SignalKeyStore surface, answered by the module."""

    def __init__(self, sidecar: Sidecar, handle: _Handle, company_id: str) -> None:
        self._sidecar = sidecar
        self._handle = handle
        self.company_id = company_id

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        pairs = await self._sidecar.call("get", company_id=self.company_id,
                                         handle=self._handle.number, type=key_type,
                                         ids=list(ids))
        return dict(pairs)

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        # Pairs, not objects: BufferJSON's reviver would turn {"5": 0} (a delete) into bytes.
        pairs = [[key_type, [[key_id, value] for key_id, value in entries.items()]]
                 for key_type, entries in data.items()]
        await self._sidecar.call("set", company_id=self.company_id,
                                 handle=self._handle.number, data=pairs)


class NodeClearableKeyStore(NodeKeyStore):
    """`state.keys` of a module whose key store has Baileys' optional `clear()`."""

    async def clear(self) -> None:
        await self._sidecar.call("clear", company_id=self.company_id,
                                 handle=self._handle.number)


class NodeAuthState:
    """Baileys' `{state: {creds, keys}, saveCreds}` of one company, held by the module."""

    def __init__(self, sidecar: Sidecar, company_id: str, handle: int, creds: dict[str, Any],
                 clearable: bool) -> None:
        self._sidecar = sidecar
        self._handle = _Handle(sidecar, handle)
        self.company_id = company_id
        self.creds = creds
        keys_class = NodeClearableKeyStore if clearable else NodeKeyStore
        self.keys = keys_class(sidecar, self._handle, company_id)

    @property
    def handle(self) -> int:
        """The sidecar's number for this state (the signal engine runs over it: signal.open)."""
        return self._handle.number

    async def save_creds(self) -> None:
        await self._sidecar.call("save", company_id=self.company_id,
                                 handle=self._handle.number, creds=self.creds)


class NodeTarget:
    """An opened `node:` target: one sidecar process, closed by `close()`."""

    def __init__(self, sidecar: Sidecar, module: str) -> None:
        self.sidecar = sidecar
        self.module = module

    async def load(self, company_id: str) -> NodeAuthState:
        loaded = await self.sidecar.call("load", company_id=_printable(company_id),
                                         company=company_id)
        return NodeAuthState(self.sidecar, company_id, loaded["handle"], loaded["creds"],
                             bool(loaded.get("clear")))

    async def close(self) -> None:
        await self.sidecar.aclose()

    def failure(self) -> NodeSidecarCrashed | None:
        """The crash, if the sidecar died while in use (the chaos runner's `failure` hook)."""
        return self.sidecar.crash

    def __repr__(self) -> str:
        return f"NodeTarget({self.module!r}, pid={self.sidecar.proc.pid})"


def _printable(company_id: object) -> str | None:
    return company_id if isinstance(company_id, str) and len(company_id) <= 60 else None
