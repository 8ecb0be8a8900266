"""The bridge that lets a Python store serve libsignal: a sidecar whose key store calls back.

For a Python target (reference, resilient, a user's factory) the signal engine runs in a Node.js
sidecar started on bridge_store.mjs: Baileys' `useXAuthState(companyId)` shape whose `load`,
`keys.get`, `keys.set` and `saveCreds` are calls to the harness (harness/node_target/
callback.mjs), answered here by the store under test through the chaos driver, so every call
is in the operation history as it happens. A store error goes back to libsignal as a thrown
error with the store's exception name and message (and its outcome): Baileys sees exactly what
it would see from a store written in JavaScript.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.authstate.errors import StoreError
from harness.node_target.sidecar import Sidecar
from harness.node_target.spec import node_binary
from harness.signal.recorder import Processes, StoreDriver

BRIDGE_JS = Path(__file__).with_name("bridge_store.mjs")


class BridgeCallFailed(StoreError):
    """The store failed a call without an exception the driver kept (it hung, for one)."""


class Bridge:
    """Serves one bridge sidecar's calls with one opened Python target."""

    def __init__(self, sidecar: Sidecar, driver: StoreDriver, processes: Processes) -> None:
        self.sidecar = sidecar
        self.driver = driver
        self.processes = processes
        self.states: dict[str, Any] = {}

    @classmethod
    async def start(cls, target: Any, driver: StoreDriver, processes: Processes, *,
                    call_timeout_s: float) -> Bridge:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        sidecar = await Sidecar.start(BRIDGE_JS, "default", env=env, cwd=BRIDGE_JS.parent,
                                      label="signal bridge", call_timeout_s=call_timeout_s,
                                      node=node_binary())
        bridge = cls(sidecar, driver, processes)
        sidecar.serve(bridge.handle)
        return bridge

    async def handle(self, op: str, message: Mapping[str, Any]) -> Any:
        company = str(message["company"])
        process = self.processes.take(company)
        outcome = "fail"
        StoreDriver.clear_error()
        try:
            if op == "load":
                outcome, state = await self.driver.timed(self.driver.load(process, company))
                if outcome == "ok":
                    self.states[company] = state
                    return {"creds": state.creds}
            elif op == "get":
                outcome, got = await self.driver.timed(self.driver.get(
                    process, company, self._state(company), str(message["type"]),
                    [str(i) for i in message["ids"]]))
                if outcome == "ok":
                    return [[k, v] for k, v in (got or {}).items() if v is not None]
            elif op == "set":
                data = {str(t): {str(i): v for i, v in entries}
                        for t, entries in message["data"]}
                outcome = await self.driver.timed(self.driver.set(
                    process, company, self._state(company), data))
                if outcome == "ok":
                    return None
            elif op == "save":
                state = self._state(company)
                state.creds.clear()
                state.creds.update(message["creds"])
                outcome = await self.driver.timed(self.driver.save_creds(process, company, state))
                if outcome == "ok":
                    return None
            else:
                raise ValueError(f"signal bridge: unknown call {op!r}")
            error = StoreDriver.last_error()
            raise error if error is not None else BridgeCallFailed(
                f"{op} of company {company} failed", company_id=company,
                outcome="unknown" if outcome == "info" else "failed")
        finally:
            self.processes.give(company, process, outcome)

    def _state(self, company: str) -> Any:
        state = self.states.get(company)
        if state is None:
            raise RuntimeError(f"signal bridge: company {company} was never loaded")
        return state

    async def close(self) -> None:
        await self.sidecar.aclose()
