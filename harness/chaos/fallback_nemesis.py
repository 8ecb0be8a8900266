"""Sever and black hole through the proxy: the engine's own minimal nemeses.

Used only when `harness.chaos.nemesis` (the full set) cannot be imported, so the engine can be
tested on its own; every other scenario then skips with a reason.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from harness.chaos.catalog import ScenarioParams, scenario
from harness.chaos.nemesis_api import ChaosEnv, NemesisUnavailable


class ProxyNemesis:
    needs_process_control = False
    needs_role = False

    def __init__(self, name: Literal["sever", "blackhole"]) -> None:
        self.name = name
        self.mttd_bound = scenario(name).mttd_bound
        self._fault: Any = None

    async def inject(self, env: ChaosEnv) -> None:
        self._fault = env.faults.sever() if self.name == "sever" else env.faults.blackhole()
        await self._fault.ainject()

    async def clear(self, env: ChaosEnv) -> float:
        fault, self._fault = self._fault, None
        if fault is not None:
            await fault.aclear()
            if fault.window is not None and fault.window.cleared_at is not None:
                return fault.window.cleared_at.monotonic
        return time.monotonic()

    def pg_recovery_s(self) -> float | None:
        return None


def make_nemesis(name: str, params: ScenarioParams) -> ProxyNemesis:
    if name in ("sever", "blackhole"):
        return ProxyNemesis(name)  # type: ignore[arg-type]
    raise NemesisUnavailable(
        f"the {name} nemesis is not available in this checkout (harness.chaos.nemesis is "
        "missing)", hint="update the checkout; only sever and blackhole run without it")
