"""The Python face of a Node.js store: the harness's target surface over one sidecar.

`await target.load(company)` calls the module's `useXAuthState(company)` in the sidecar and
returns a state whose `creds` is a Python copy of `state.creds`; `save_creds()` puts the copy
back into the module's creds object (in place, as Baileys' `Object.assign` does) and calls its
`saveCreds()`; `keys.get/set` call `state.keys.get/set` on the module's state. Each loaded
state is a handle in the sidecar, released when the Python state is garbage-collected.

Optional hooks appear when the module has them: `delete_company(company)` once a `load` showed
that `useX(companyId)` returns `deleteSession()` beside `saveCreds` (as published stores do), and
`snapshot(company)` when the module exports `snapshot(companyId)`.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from harness.node_target.errors import NodeSidecarCrashed, NodeStoreError, module_error
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
        self._deletes = False  # a load showed deleteSession() beside saveCreds

    async def load(self, company_id: str) -> NodeAuthState:
        loaded = await self.sidecar.call("load", company_id=_printable(company_id),
                                         company=company_id)
        if loaded.get("delete"):
            self._deletes = True
        return NodeAuthState(self.sidecar, company_id, loaded["handle"], loaded["creds"],
                             bool(loaded.get("clear")))

    @property
    def delete_company(self) -> Callable[[str], Awaitable[None]]:
        """The `delete_company` hook: `useX(company).deleteSession()`. Present (for the suites'
        `getattr(target, "delete_company", None)`) once a load returned a deleteSession()."""
        if not self._deletes:
            raise AttributeError("delete_company: no load of this module has returned a "
                                 "deleteSession() beside saveCreds")
        return self._delete_company

    async def _delete_company(self, company_id: str) -> None:
        await self.sidecar.call("delete", company_id=_printable(company_id), company=company_id)

    @property
    def snapshot(self) -> Callable[[str], Awaitable[dict[str, Any]]]:
        """The `snapshot` hook, when the module exports `snapshot(companyId)`:
        `{"creds": dict | None, "keys": {type: {id: value}}}`."""
        if not self.sidecar.info.get("snapshot"):
            raise AttributeError("snapshot: the module exports no snapshot(companyId)")
        return self._snapshot

    async def _snapshot(self, company_id: str) -> dict[str, Any]:
        got = await self.sidecar.call("snapshot", company_id=_printable(company_id),
                                      company=company_id)
        return {"creds": got.get("creds"),
                "keys": {key_type: dict(pairs) for key_type, pairs in got.get("keys") or []}}

    async def read_state(self, company_id: str, keys: Mapping[str, Iterable[str]], *,
                         as_text: bool = False) -> tuple[Any, dict[str, dict[str, Any]]]:
        """(creds, {type: {id: value}}) as a new `useX(company)` sees them, in one round trip
        (load, then keys.get per type): the durable reader's fresh-instance read. `as_text`:
        each value as its BufferJSON text (`harness.authstate.codec.loads` decodes it)."""
        got = await self.sidecar.call("read", company_id=_printable(company_id),
                                      company=company_id, text=as_text,
                                      keys=[[t, list(ids)] for t, ids in keys.items()])
        return got["creds"], {key_type: dict(pairs) for key_type, pairs in got["keys"]}

    async def read_states(self, wanted: Mapping[str, Mapping[str, Iterable[str]]], *,
                          as_text: bool = False, limit: int = 16
                          ) -> dict[str, tuple[Any, dict[str, dict[str, Any]]] | NodeStoreError]:
        """`read_state` of many companies in one round trip, `limit` at a time in the sidecar;
        a company whose read threw maps to its NodeStoreError."""
        items = [[company, [[t, list(ids)] for t, ids in keys.items()]]
                 for company, keys in wanted.items()]
        got = await self.sidecar.call("readMany", companies=items, text=as_text, limit=limit)
        return _per_company(list(wanted), got, "load + state.keys.get")

    async def snapshots(self, companies: Iterable[str], *, as_text: bool = False,
                        limit: int = 16
                        ) -> dict[str, tuple[Any, dict[str, dict[str, Any]]] | NodeStoreError]:
        """The module's `snapshot(companyId)` of many companies in one round trip:
        (creds or None, {type: {id: value}}) each, or the NodeStoreError it threw."""
        if not self.sidecar.info.get("snapshot"):
            raise AttributeError("snapshots: the module exports no snapshot(companyId)")
        ids = list(companies)
        got = await self.sidecar.call("snapshotMany", companies=ids, text=as_text, limit=limit)
        return _per_company(ids, got, "snapshot(companyId)")

    async def close(self) -> None:
        await self.sidecar.aclose()

    def failure(self) -> NodeSidecarCrashed | None:
        """The crash, if the sidecar died while in use (the chaos runner's `failure` hook)."""
        return self.sidecar.crash

    def __repr__(self) -> str:
        return f"NodeTarget({self.module!r}, pid={self.sidecar.proc.pid})"


def _per_company(companies: list[str], got: list[dict[str, Any]], operation: str
                 ) -> dict[str, tuple[Any, dict[str, dict[str, Any]]] | NodeStoreError]:
    out: dict[str, tuple[Any, dict[str, dict[str, Any]]] | NodeStoreError] = {}
    for company, one in zip(companies, got, strict=True):
        if "error" in one:
            out[company] = module_error(one["error"], operation=operation,
                                        company_id=_printable(company), write=False)
        else:
            out[company] = (one["creds"],
                            {key_type: dict(pairs) for key_type, pairs in one["keys"]})
    return out


def _printable(company_id: object) -> str | None:
    return company_id if isinstance(company_id, str) and len(company_id) <= 60 else None
