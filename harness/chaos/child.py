"""The process the client-crash scenario kills: a target driven by the chaos workload.

    python -m harness.chaos.child --target SPEC --cache-dir DIR --history FILE \\
        --layout FILE --companies co000,co001,... [--dsn DSN] [--seed N] [--run-tag TAG]
        [--signal FILE]

Opens the target from its spec string (`harness.targets.resolve_target`) on the DSN (also
`AUTHSTATE_CHAOS_DSN`, which keeps a password out of `ps`), pairs the companies, writes their
layout (contacts, groups, pre-key ids: no values) so a successor can carry on with the same
companies, then runs the workload until it is killed. Every operation goes to a History sink
that is flushed line by line, so a SIGKILL leaves the history behind (at most a torn last line).

With `--signal FILE` (client-crash with Signal conversations: a JSON file with `companies`,
the SignalConfig as `config`, `journal` and `run_tag`) the same process also holds real Signal
conversations through the same opened target, recorded to the same history (process ids from
harness.chaos.signal_beside.PROCESS_BASE): set up after the workload's, started with its
traffic, everything a successor needs journaled line by line (harness/signal/journal.py). The
engine's Node.js sidecar (a bridge sidecar for a Python target) is named in a
`{"event": "signal", "node_pids": [...]}` line: it ends when this process dies (end of its
stdin), which the parent checks.

It reports on stdout, one JSON object per line: `{"event": "ready"}` once the target is open,
`{"event": "running", "t": ...}` when traffic starts, then every 50 ms a status row
`{"event": "status", "t", "mode", "breaker", "journal_depth", "conflicts", "ops", "stats"}`
(monotonic seconds: CLOCK_MONOTONIC is shared with the parent). It exits by itself when its
stdin closes (the parent died) or after `--max-s` seconds, so it never outlives the harness.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

DSN_ENV = "AUTHSTATE_CHAOS_DSN"
STATUS_INTERVAL_S = 0.05
SIGNAL_STATS_EVERY = 20  # status rows: the signal engine's figures go to its journal each 1 s
EXIT_ORPHANED = 3


def _emit(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def _die_with_parent() -> None:
    """Exit at once when stdin reaches EOF: the parent closed it or died."""

    def watch() -> None:
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def layout_of(workload: Any) -> dict[str, Any]:
    """The companies' structure (ids only, no key material): what a successor needs to go on
    writing the same keys."""
    return {"companies": [{
        "id": c.id, "phone": c.phone,
        "contacts": [[contact.user, list(contact.devices)] for contact in c.contacts],
        "groups": [[g.jid, [m.user for m in g.members]] for g in c.groups],
        "pre_key_ids": list(c.pre_key_ids), "next_pre_key_id": c.next_pre_key_id,
    } for c in workload.companies]}


def write_atomically(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _dig(node: Any, *path: str) -> Any:
    for key in path:
        node = node.get(key) if isinstance(node, dict) else None
    return node


def status_row(target: Any) -> dict[str, Any]:
    """What the parent needs of `target.status()` (the sampler's row)."""
    status = getattr(target, "status", None)
    if not callable(status):
        return {"mode": None, "breaker": None, "journal_depth": None, "conflicts": None}
    try:
        s = status()
    except Exception:  # a status bug must not kill the workload
        return {"mode": None, "breaker": None, "journal_depth": None, "conflicts": None}
    return {"mode": s.get("mode"), "breaker": _dig(s, "breaker", "state"),
            "journal_depth": _dig(s, "journal", "depth"), "conflicts": s.get("conflicts")}


async def run(args: argparse.Namespace) -> int:
    from harness.chaos.workload import Workload, WorkloadConfig
    from harness.metrics.history import History
    from harness.targets import resolve_target

    dsn = args.dsn or os.environ.get(DSN_ENV)
    if not dsn:
        _emit({"event": "error", "message": f"no DSN: pass --dsn or set {DSN_ENV}"})
        return 2
    spec = resolve_target(args.target)
    history = History(sink=args.history)
    target = await spec.open(dsn, cache_dir=Path(args.cache_dir))
    _emit({"event": "ready", "pid": os.getpid()})
    workload = Workload(target, args.companies.split(","), history,
                        config=WorkloadConfig(seed=args.seed), run_tag=args.run_tag,
                        process_base=args.process_base)
    signal = await signal_workload(Path(args.signal), target, history) if args.signal else None
    if signal is not None:
        signal.start_engine()  # Node.js loads Baileys on the other core while companies pair
    await workload.setup()
    write_atomically(Path(args.layout), layout_of(workload))
    signal = await signal_setup(signal) if signal is not None else None
    workload.start()
    if signal is not None:
        signal.start()
    _emit({"event": "running", "t": workload.started_at})
    give_up = time.monotonic() + args.max_s
    rows = 0
    while time.monotonic() < give_up:
        _emit({"event": "status", "t": time.monotonic(), **status_row(target),
               "ops": len(history), "stats": workload.stats()})
        if signal is not None and rows % SIGNAL_STATS_EVERY == 0:
            signal_stats(signal)
        rows += 1
        await asyncio.sleep(STATUS_INTERVAL_S)
    await workload.stop()
    if signal is not None:
        await signal.stop(grace_s=1.0)
        await signal.close()
    await target.close()
    history.close()
    return 0


async def signal_workload(spec_path: Path, target: Any, history: Any) -> Any:
    """The Signal conversations of this process, not yet set up."""
    from harness.chaos.signal_beside import PROCESS_BASE
    from harness.signal.journal import JournalWriter
    from harness.signal.workload import SignalConfig, SignalWorkload

    spec = json.loads(await asyncio.to_thread(spec_path.read_text))
    return SignalWorkload(target, spec["companies"], history,
                          config=SignalConfig.from_doc(spec["config"]),
                          run_tag=spec["run_tag"], process_base=PROCESS_BASE,
                          journal=JournalWriter(Path(spec["journal"])))


async def signal_setup(signal: Any) -> Any:
    """`signal` set up (None, said on stdout, when Node.js is not there to run Baileys). A
    target that fails the set-up raises SignalSetupError."""
    from harness.node_target.errors import NodeUnavailable

    try:
        await signal.setup()
    except NodeUnavailable as exc:
        _emit({"event": "signal", "unavailable": f"{exc.message} ({exc.hint})"})
        await signal.close()
        return None
    sidecar = signal.engine.sidecar if signal.engine is not None else None
    _emit({"event": "signal", "node_pids": [sidecar.proc.pid] if sidecar is not None else []})
    return signal


def signal_stats(signal: Any) -> None:
    """The engine's own figures (not verdicts: those are journaled as they happen)."""
    assert signal.journal is not None
    signal.journal({"e": "stats", "server": dict(signal.server.counts),
                    "time_split": signal.engine.time_split() if signal.engine else None})


def child_arguments(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line of a target process a scenario starts (this one and the steered one)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--target", required=True)
    parser.add_argument("--dsn", default=None)
    parser.add_argument("--cache-dir", required=True)
    parser.add_argument("--history", required=True)
    parser.add_argument("--layout", required=True)
    parser.add_argument("--companies", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--run-tag", default="child")
    parser.add_argument("--process-base", type=int, default=0)
    parser.add_argument("--max-s", type=float, default=600.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = child_arguments("python -m harness.chaos.child", __doc__.split("\n\n")[0])
    parser.add_argument("--signal", default=None,
                        help="a JSON file: Signal conversations in this process too")
    args = parser.parse_args(argv)
    _die_with_parent()
    try:
        return asyncio.run(run(args))
    except Exception as exc:
        _emit({"event": "error", "message": f"{type(exc).__name__}: {exc}"})
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
