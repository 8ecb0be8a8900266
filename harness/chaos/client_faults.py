"""The client-layer scenarios besides client-crash: faults of the application and its
processes, not of the database.

    cancel            the application cancels a share of its calls in flight
                      (harness/chaos/cancel_shape.py)
    deploy-overlap    an old and a new process of the target serve the same companies
                      (harness/chaos/overlap_shape.py)
    restart-degraded  the target's process restarts while PostgreSQL is away
                      (harness/chaos/restart_degraded_shape.py)

Each is a `ScenarioShape` (harness/chaos/nemesis_api.py): it runs its own course and hands the
runner a target to settle, a history and the fault window; the runner then flushes, reads
PostgreSQL directly and judges the history exactly as for every other scenario.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.chaos.catalog import ScenarioParams
from harness.chaos.nemesis_api import ScenarioShape


def client_fault_shape(name: str, params: ScenarioParams) -> ScenarioShape | None:
    """The shape of a client-layer scenario, or None when `name` is not one of these."""
    # Imported here: each shape imports the scenario machinery it needs.
    from harness.chaos.cancel_shape import CancelShape
    from harness.chaos.overlap_shape import DeployOverlapShape
    from harness.chaos.restart_degraded_shape import RestartDegradedShape

    shapes: dict[str, Callable[[ScenarioParams], ScenarioShape]] = {
        "cancel": CancelShape, "deploy-overlap": DeployOverlapShape,
        "restart-degraded": RestartDegradedShape}
    maker = shapes.get(name)
    return None if maker is None else maker(params)
