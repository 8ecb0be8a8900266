"""The contract between the scenario runner and the nemeses (the things that break PostgreSQL).

How the runner drives one repetition of a steady-traffic scenario (harness/chaos/scenario.py):

    nemesis = make_nemesis(name, params)     # harness.chaos.nemesis; may raise NemesisUnavailable
    ... fresh database + LOGIN role, proxy, target opened on env.proxy_dsn, workers, warmup ...
    await nemesis.inject(env)                # opens its FaultWindow(s) in env.timeline
    await asyncio.sleep(params.fault_span_s) # the hold; traffic goes on
    cleared = await nemesis.clear(env)       # monotonic seconds: the fault is surely gone
    ... recovery period, stop workers, flush, final read, checker, recovery metrics ...

Shapes that are not "inject, hold, clear":
- flap: `inject` starts the cycles in the background (the first down phase is open when it
  returns), every down phase records its own window (kind "flap", params["cycle"]); `clear`
  waits for the last cycle (or stops early when called sooner) and returns the last up time.
  Per-window RTO is measured from each window's end.
- reset-mid-write: needs an 812-pre-key write in flight when the RST hits. `env.workload` offers
  `bulk_write(count=812)`, which starts one such write (recorded in the history like any other
  op, on its own Jepsen process) and returns a `BulkWrite` whose `invoked` event is set just
  before the store call starts and `done` when it returned or raised. Slowing the connection
  first (bandwidth / latency toxic) so the write is still on the wire is the nemesis' business.
- process faults (pg-kill, pg-restart): act on `env.server`; `clear` returns the moment the
  nemesis' own probe (a plain asyncpg connect + SELECT on env.direct_dsn) first succeeded after
  the restart, and `pg_recovery_s()` how long PostgreSQL took to accept connections again, so
  the RTO measures the store and PostgreSQL's crash recovery is reported beside it.
- SQL faults (terminate-backends, connection-exhaustion, read-only): act through
  env.admin_dsn on `env.app_role`; `clear` undoes them (ALTER ROLE ... RESET / CONNECTION LIMIT
  -1) and, where the setting only applies to new sessions, ends the role's sessions so the
  change is in force (say so in the window's params).
- client-crash is a different shape altogether (a child process runs the workload and is
  killed): it implements `ScenarioShape` (below) with the engine's pieces:
    `harness.chaos.workload.Workload(target, companies, history, ...)`  setup / start / stop,
    `harness.target_driver.Driver`  records every target call in the History (ok/fail/info),
    `harness.metrics.history.History(sink=path)`  survives the kill -9 of the child,
    `harness.chaos.child`-style entry point: `python -m ...` receiving the target spec string,
    and returns a `ShapeOutcome`; the runner then does flush, final read, checker, recovery
    metrics and `harness.chaos.results.assemble(...)` exactly as for every other scenario.
    The runner finds it as `harness.chaos.crash.make_shape(params) -> ScenarioShape`; the
    child's process ids must not overlap the parent's (`Workload(process_base=...)`), and its
    history is merged into `ctx.history` (`History.merge` gives a new one: record into
    ctx.history the merged events, e.g. by returning them in ShapeOutcome.history).

A nemesis that cannot run here raises `NemesisUnavailable(reason)` from `make_nemesis` or
`inject`; the scenario is then recorded as skipped with that reason, which must say how to
enable it (e.g. "process faults need a server the harness starts: drop --dsn").
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from harness.errors import HarnessError
from harness.metrics.fault_timeline import FaultTimeline

if TYPE_CHECKING:
    from harness.chaos.catalog import ScenarioParams
    from harness.faults.helpers import Faults

# The harness's deadline for any call under a fault (gate chaos-deadline-max-s): what the
# latency nemesis exceeds, what bounds MTTD of faults that make calls wait. Never the store's.
DEFAULT_DEADLINE_S = 2.0


class NemesisUnavailable(HarnessError):
    """This fault cannot be made here (e.g. no control of the server process): skip, with a
    reason that says how to enable it."""


@runtime_checkable
class ControllableServer(Protocol):
    """A PostgreSQL server whose process the harness owns (the embedded one, for process
    faults). The chaos fixture starts it; the nemesis stops, kills and starts it."""

    kind: str
    dsn: str  # superuser DSN to the maintenance database
    host: str
    port: int

    def stop(self, mode: str = "fast") -> None: ...
    def start(self) -> Any: ...
    def is_running(self) -> bool: ...
    def close(self) -> None: ...


@dataclass
class BulkWrite:
    """One large keys.set started on request (reset-mid-write). Events are set on the loop
    that runs the workload."""

    company: str
    count: int
    invoked: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: Literal["ok", "fail", "info"] | None = None  # once done
    values: dict[tuple[str, str], str | None] = field(default_factory=dict)  # digest per ref


class WorkloadHooks(Protocol):
    """What a nemesis may ask of the running workload."""

    def bulk_write(self, count: int = 812, company: str | None = None) -> BulkWrite: ...


@dataclass
class ChaosEnv:
    """Everything a nemesis may act on, for one repetition of one scenario."""

    faults: Faults  # fault helpers bound to this repetition's proxy, recording into `timeline`
    timeline: FaultTimeline
    proxy_dsn: str  # the target's DSN: app role, through the proxy
    direct_dsn: str  # app role, straight to PostgreSQL (probes that must bypass the proxy)
    admin_dsn: str  # superuser, straight to PostgreSQL, this repetition's database
    app_role: str | None  # the LOGIN role the target connects as; None: it uses the admin role
    server: ControllableServer | None  # our own PostgreSQL process; None when not ours
    deadline_s: float  # the harness's deadline (gate chaos-deadline-max-s), not the target's
    database: str = ""
    workload: WorkloadHooks | None = None
    observer: Any = None  # harness.chaos.observer.Observer: watch_group() for atomicity checks
    notes: list[str] = field(default_factory=list)  # said in the scenario's result


@runtime_checkable
class Nemesis(Protocol):
    name: str
    mttd_bound: Literal["gate", "deadline"]
    needs_process_control: bool
    needs_role: bool

    async def inject(self, env: ChaosEnv) -> None:
        """Start the fault; record its FaultWindow(s) in env.timeline (the Faults helpers do)."""

    async def clear(self, env: ChaosEnv) -> float:
        """End the fault; return the monotonic time from which it is surely gone (process
        faults: when our own probe first connected again). Must be safe to call twice and after
        a failed inject (the runner always calls it, in a finally)."""

    def pg_recovery_s(self) -> float | None:
        """Process faults: seconds PostgreSQL took to accept connections again; else None."""


@dataclass
class ShapeContext:
    """What a non-standard scenario (client-crash) gets from the runner."""

    name: str
    params: ScenarioParams
    env: ChaosEnv
    target_spec: Any  # harness.targets.TargetSpec: .spec is the string to hand to a child
    cache_dir: Path
    companies: Sequence[str]
    history: Any  # harness.metrics.history.History the runner will check
    work_dir: Path  # scratch files (child history sink, logs); removed after the run
    seed: int
    # harness.chaos.observer.Observer, already running: a shape hands it every history its
    # processes record (`follow` in process, `follow_file` for a child's history file) so
    # durable state is watched from outside while the shape runs.
    observer: Any = None
    # harness.signal.profiles.SignalParams: real Signal conversations to carry across the
    # shape (client-crash does; the other shapes ignore it), None when the profile runs none
    signal: Any = None

    def phase(self, name: str, detail: str = "") -> None:
        """Log one line per phase (warmup / fault / recover / check) into pytest's log."""
        import logging

        logging.getLogger("harness.chaos").info("chaos %s: %s %s", self.name, name, detail)


@dataclass
class ShapeOutcome:
    """What the runner needs back to settle, check and assemble the scenario."""

    target: Any | None  # an open target on the same cache_dir to flush and close, or None
    started_at: float  # monotonic: traffic began (for the timeline origin)
    cleared_at: float  # monotonic: the fault was over (RTO counts from here)
    samples: list[dict[str, Any]] = field(default_factory=list)  # status() samples if any
    pg_recovery_s: float | None = None
    workload: dict[str, Any] = field(default_factory=dict)  # Workload.stats() of the processes
    history: Any | None = None  # the History to check, when not ctx.history (e.g. merged)
    notes: list[str] = field(default_factory=list)
    # the shape's Signal conversations (harness.chaos.signal_beside.SignalConversations, e.g.
    # crash_signal.CrashSignal): the runner closes `target`, runs their new pod, reads their
    # companies in the final read and builds the repetition's `signal` item from them
    signal: Any | None = None


class ScenarioShape(Protocol):
    name: str

    async def run(self, ctx: ShapeContext) -> ShapeOutcome: ...
