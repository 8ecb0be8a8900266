"""Real Signal conversations across a client-crash: they live in the killed process and go on
in its successor, as a multi-tenant Baileys service's do when it is killed and restarted.

Course (harness/chaos/crash.py drives it; only when the chaos profile runs Signal beside its
scenarios, harness.chaos.signal_beside.CHAOS_SIGNAL_COMPANIES):
1. The child that client-crash kills also sets up and runs the conversations (`--signal`,
   harness/chaos/child.py) on the target it opened, recording every key read and write to its
   history, and journals what a successor needs (harness/signal/journal.py).
2. Just before the kill the Node.js processes of the child's engine are noted; after it, they
   must end by themselves (the end of their stdin) within NODE_EXIT_S: one still there then is
   killed and reported (`node_survived_kill`), since a dead service's sidecar must not go on
   touching the store.
3. After the heal, on the successor instance (the one whose journal replay client-crash is
   about), during the recovery period: an engine (its Node.js bridge started ahead, while the
   child set up: a service has its libraries loaded before it serves) loads every company
   (still paired); the envelopes the server stand-in still held at the kill are delivered in
   the order they were posted (the WhatsApp server is not in the crashed process: its offline
   queue survives a client crash); then every conversation continues (each 1:1 side sends one
   message the other decrypts, each group one member sends), without a new session. Recorded
   to the runner's history.
4. The runner settles and closes the successor, then the usual new pod (fresh cache, only
   PostgreSQL) continues every conversation again; the repetition's `signal` item is built like
   the steady scenarios' (harness/signal/section.py), from the tally the child journaled plus
   what the successor did.

Counted apart, never as undecryptable (`in_flight_at_kill`): deliveries that died with the
process without a verdict: messages the application had not posted yet (its outbox is in
memory), and envelopes whose decrypt was running at the kill and had already written (the
child's history shows a write of the recipient since it began): received again, they may fail
because that decrypt committed (a consumed message key: "Key used already or never filled")
whatever the store does; only those two answers (CONSUMED) are excused. An envelope in hand
whose decrypt had written nothing must decrypt again, and a failure to counts. A delivery
that failed before the kill stays counted as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from harness.chaos.child_process import ChildProcess
from harness.chaos.signal_beside import new_pod, signal_companies
from harness.metrics.checker import CheckResult
from harness.metrics.history import History
from harness.metrics.windows import Window
from harness.signal.attribution import attribute
from harness.signal.engine import SignalEngine, discard_start
from harness.signal.journal import Journal, Posted, read_journal
from harness.signal.newpod import (
    Locks,
    NewPodResult,
    continue_conversations,
    locked,
    open_companies,
)
from harness.signal.profiles import SignalParams
from harness.signal.recorder import Processes
from harness.signal.section import build_section
from harness.signal.tally import Delivery, Failure, Tally, label
from harness.signal.topology import Conversation, involved_keys

SUCCESSOR_PROCESS_BASE = 5_000_000  # Jepsen process ids of the successor's engine
NEW_POD_PROCESS_BASE = 6_000_000  # ... and of the new pod's (in a history of its own)
NODE_EXIT_S = 15.0  # the sidecar ends at the end of its stdin; its module's close() is bounded
SUCCESSOR_S = 180.0  # the successor's part: engine, loads, redelivery, one message each
NODE_POLL_S = 0.05
# What libsignal says to a message whose decrypt already committed (its message key consumed):
# the only failures excused for an envelope in hand at the kill. Any other (Bad MAC, "No session
# record", ...) is the store's, counted as undecryptable.
CONSUMED = frozenset({"Key used already or never filled", "Received message with old counter"})


class KilledRun:
    """The child's conversations as its journal tells them (build_section's SignalRun)."""

    def __init__(self, journal: Journal, companies: list[str], killed_ns: int,
                 message_rate_hz: float) -> None:
        self.journal = journal
        self.companies = companies
        self.tally: Tally = journal.tally
        self.started_ns = journal.started_ns
        self.stopped_ns = journal.stopped_ns or killed_ns  # the traffic ended with the process
        self.message_rate_hz = message_rate_hz

    def traffic_window_s(self) -> float | None:
        if self.started_ns is None:
            return None
        return (self.stopped_ns - self.started_ns) / 1e9

    def stats(self) -> dict[str, Any]:
        topology = self.journal.topology
        summary = self.tally.summary()
        return {"companies": len(self.companies),
                "conversations": {"direct": len(topology.direct),
                                  "groups": len(topology.groups)},
                "messages": summary["messages"], "deliveries": summary["deliveries"],
                "message_rate_hz": self.message_rate_hz, "setup_s": self.journal.setup_s,
                "harness_errors": dict(self.tally.harness_errors),
                "server": self.journal.stats.get("server") or {},
                "time_split": self.journal.stats.get("time_split"),
                "cpu_s": None}  # the child never stopped to measure it


class CrashSignal:
    """One client-crash repetition's Signal conversations (the runner's
    SignalConversations: `companies`, `check_new_pod`, `section`)."""

    def __init__(self, params: SignalParams, work_dir: Path, history: History, *,
                 run_tag: str, observer: Any = None) -> None:
        self.params = params
        self.history = history  # the runner's: the successor's calls
        self.observer = observer  # harness.chaos.observer.Observer, following our histories
        self.work_dir = work_dir
        self.companies = signal_companies(params.companies)
        self.run_tag = run_tag
        self.spec_path = work_dir / "signal.json"
        self.journal_path = work_dir / "signal-journal.jsonl"
        self.processes = Processes(SUCCESSOR_PROCESS_BASE)
        self.journal: Journal | None = None
        self.killed_ns: int | None = None
        self.successor: NewPodResult | None = None
        self.new_pod: NewPodResult | None = None
        self.redelivered: Counter[str] = Counter()
        self.in_flight: dict[str, Any] = {}
        self.in_hand_rejected: Counter[str] = Counter()
        self._committing: set[int] = set()  # envelopes in hand whose decrypt had written
        self.node_pids: list[int] = []
        self.node_survived: list[int] = []
        self.node_exit_s: float | None = None
        self.notes: list[str] = []
        self.target_errors: list[str] = []
        self.started = time.monotonic()
        self._node: list[psutil.Process] = []
        self._node_watch: asyncio.Task[None] | None = None
        self._carrying: asyncio.Future[None] | None = None
        self._prepared: asyncio.Future[SignalEngine] | None = None
        self.phases: dict[str, float] = {}  # the successor's: engine, loads, receive, continue

    # -- the child -------------------------------------------------------------------------------
    def child_args(self) -> list[str]:
        """The child's `--signal` argument (its spec file written here)."""
        self.spec_path.write_text(json.dumps({
            "companies": self.companies, "config": self.params.workload.to_doc(),
            "journal": str(self.journal_path), "run_tag": self.run_tag}))
        return ["--signal", str(self.spec_path)]

    def running(self, child: ChildProcess) -> bool:
        """The child runs its conversations (False, noted, when it could not run Baileys).
        Takes hold of its Node.js processes while they are alive (pid reuse cannot fool the
        check after the kill)."""
        if "unavailable" in child.signal or "node_pids" not in child.signal:
            self.notes.append("signal conversations not run: "
                              f"{child.signal.get('unavailable') or 'the child did not say'}")
            return False
        for pid in child.signal["node_pids"]:
            with contextlib.suppress(psutil.Error):
                self._node.append(psutil.Process(int(pid)))
                self.node_pids.append(int(pid))
        return True

    def killed(self, *, at_ns: int, child_history: History) -> None:
        """Right after the kill -9 of the child (at `at_ns`, monotonic): read what it
        journaled (and, from its history, which decrypts in hand had begun to commit), and
        watch its Node.js processes end."""
        self.killed_ns = at_ns
        self.journal = read_journal(self.journal_path)
        if self.journal.torn_tail:
            self.notes.append(f"signal journal of the killed child: {self.journal.torn_tail}")
        self._committing = _committing(self.journal, child_history)
        self.in_flight = _in_flight(self.journal, self._committing)
        self._node_watch = asyncio.ensure_future(self._watch_node())

    async def _watch_node(self) -> None:
        """Seconds from the kill until the child's Node.js processes were gone (polled)."""
        assert self.killed_ns is not None
        killed = self.killed_ns / 1e9
        alive = [p for p in self._node if _alive(p)]
        while alive and time.monotonic() - killed < NODE_EXIT_S:
            await asyncio.sleep(NODE_POLL_S)
            alive = [p for p in alive if _alive(p)]
        if not alive:
            self.node_exit_s = round(time.monotonic() - killed, 3)
            return
        self.node_survived = [p.pid for p in alive]
        self.notes.append(f"client-crash: {len(alive)} Node.js process(es) of the killed child "
                          f"still ran {NODE_EXIT_S:g} s after the kill; killed by the harness")
        _kill(alive)

    # -- the successor ---------------------------------------------------------------------------
    def carry_on(self, target: Any) -> None:
        """Start the successor's part on `target` (awaited by `finish`)."""
        self._carrying = asyncio.ensure_future(self._successor(target))

    async def _successor(self, target: Any) -> None:
        """The successor instance receives what the server held and continues every
        conversation (bounded; an engine failure is the result's error, not raised)."""
        assert self.journal is not None
        result = NewPodResult()
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._carry_on(target, result), SUCCESSOR_S)
        except TimeoutError:
            result.error = f"the successor did not finish within {SUCCESSOR_S:g} s"
        except Exception as exc:  # the engine or its sidecar failed: said, not raised
            result.error = f"{type(exc).__name__}: {exc}"[:300]
        result.seconds = time.monotonic() - started
        self.successor = result

    async def _carry_on(self, target: Any, result: NewPodResult) -> None:
        assert self.journal is not None
        t0 = time.monotonic()
        engine = await self._engine(target)
        self.phases["engine_s"] = round(time.monotonic() - t0, 3)
        try:
            t0 = time.monotonic()
            if not await open_companies(engine, self.journal.topology, result):
                return
            self.phases["load_s"] = round(time.monotonic() - t0, 3)
            t0 = time.monotonic()
            locks = Locks()
            channels: dict[tuple[str, str], list[Posted]] = {}
            for posted in self.journal.unsettled():
                channels.setdefault(posted.channel, []).append(posted)

            async def deliver(queue: list[Posted]) -> None:
                for posted in queue:  # a channel's stanzas in order, as the server keeps them
                    await self._receive(engine, locks, posted)

            await asyncio.gather(*(deliver(queue) for queue in channels.values()))
            self.phases["receive_s"] = round(time.monotonic() - t0, 3)
            t0 = time.monotonic()
            await continue_conversations(engine, self.journal.topology, result, locks,
                                         tag="successor")
            self.phases["continue_s"] = round(time.monotonic() - t0, 3)
        finally:
            await engine.close()

    def prepare(self) -> None:
        """Start the successor's engine now, ahead of the heal (a bridge sidecar with Baileys
        loaded, bound to the successor once it is open): a service process has its libraries
        loaded before it serves, and Node.js starting at the heal would slow the replay the
        RTO measures. A `node:` target's engine runs in its own sidecar: started then."""
        c = self.params.workload
        self._prepared = asyncio.ensure_future(SignalEngine.bridged(
            self.history, self.processes, op_timeout_s=c.op_timeout_s,
            commit_retries=c.commit_retries, commit_delay_ms=c.commit_delay_ms))

    async def _engine(self, target: Any) -> SignalEngine:
        prepared, self._prepared = self._prepared, None
        if prepared is not None and getattr(target, "sidecar", None) is None:
            return (await prepared).bind(target)
        await discard_start(prepared)
        c = self.params.workload
        return await SignalEngine.start(target, self.history, self.processes,
                                        op_timeout_s=c.op_timeout_s,
                                        commit_retries=c.commit_retries,
                                        commit_delay_ms=c.commit_delay_ms)

    async def _receive(self, engine: SignalEngine, locks: Locks, posted: Posted) -> None:
        """One envelope the killed process's server stand-in still held, received by the
        successor; its verdict goes into the tally like any other."""
        assert self.journal is not None
        tally, topology = self.journal.tally, self.journal.topology
        delivery: Delivery = tally.messages[posted.message].deliveries[posted.recipient]
        message = delivery.message
        sender, recipient = message.sender, posted.recipient
        conv = _conversation(topology.conversations, message.conversation, sender, recipient)
        jids, payload = topology.jids, posted.payload
        if message.kind == "direct":
            result = await locked(engine, locks, "receive", recipient, **{
                "from": jids[sender], "type": payload["type"],
                "ciphertext": payload["ciphertext"]})
        else:
            result = await locked(engine, locks, "group_receive", recipient, **{
                "group": conv.jid, "from": jids[sender], "ciphertext": payload["ciphertext"],
                "skdm": payload.get("skdm")})
        decrypted = result.get("plaintext") == message.plaintext
        if delivery.status != "pending":  # its verdict was recorded before the kill
            tally.duplicate("received again after the kill: "
                            + ("decrypted again" if decrypted else "rejected"))
            self.redelivered["already decided"] += 1
            return
        if decrypted:
            tally.decrypted(delivery)
            self.redelivered["decrypted"] += 1
            return
        error = dict(result.get("error") or {"name": "WrongPlaintext",
                                             "message": "decrypted to another plaintext"})
        if error.get("harness"):  # the engine failed, not libsignal: said as the workload does
            tally.harness_error(f"receive: {error.get('name')}: {error.get('message')}"[:160])
        if posted.seq in self._committing and label(error) in CONSUMED:
            # its decrypt at the kill wrote and consumed the message key: no store verdict
            self.in_hand_rejected[label(error)] += 1
            self.redelivered["in hand at the kill, rejected"] += 1
            return
        pkmsg = (payload.get("type") == "pkmsg"
                 or (payload.get("skdm") or {}).get("type") == "pkmsg")
        tally.failed(delivery, Failure(
            time.monotonic_ns(), message.id, sender, recipient, label(error), error,
            involved_keys(topology, conv, sender, recipient, pkmsg=pkmsg,
                          stage=error.get("stage")),
            int(result.get("store_failures") or 0), len(delivery.failures) + 1))
        tally.lost(delivery, "undecryptable after the crash (no retry after the restart)")
        self.redelivered["failed"] += 1

    async def finish(self) -> None:
        """After the recovery period: the successor's part done (it is bounded), the check of
        the killed child's Node.js processes settled."""
        for task in (self._carrying, self._node_watch):
            if task is not None:
                await task

    async def abandon(self) -> None:
        """On the way out (a course that failed, too): nothing of ours still runs, no Node.js
        process of the child is left."""
        for task in (self._carrying, self._node_watch):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        prepared, self._prepared = self._prepared, None
        await discard_start(prepared)
        _kill([p for p in self._node if _alive(p)])

    # -- after the runner settled and closed the successor -----------------------------------
    async def check_new_pod(self, target_spec: Any, dsn: str, cache_dir: Path) -> History:
        """A fresh instance, an empty cache, only PostgreSQL: every conversation goes on.
        Recorded into a history of its own, which the observer follows and which is returned
        for the runner to merge in: the shape's history (the child's merged with ours) was
        made before the runner settled the successor, and takes no more."""
        assert self.journal is not None
        history = History(sink=self.work_dir / "signal-new-pod-history.jsonl")
        try:
            if self.observer is not None:
                await self.observer.follow(history)
            self.new_pod = await new_pod(target_spec, dsn, cache_dir, self.journal.topology,
                                         history, Processes(NEW_POD_PROCESS_BASE),
                                         self.params.workload, self.target_errors)
        finally:
            history.close()
        return history

    def figures(self) -> dict[str, Any]:
        """The crash figures' `signal` part: what died with the process, what the server
        still held, the Node.js processes of the killed child."""
        return {"in_flight_at_kill": self.in_flight,
                "received_after_kill": dict(self.redelivered),
                "in_hand_rejected": dict(self.in_hand_rejected),
                "node_pids": self.node_pids, "node_exit_s": self.node_exit_s,
                "node_survived_kill": self.node_survived, "successor_phases_s": self.phases}

    def section(self, scenario: str, target: str, *, contrast: bool, check: CheckResult,
                history: History, windows: list[Window]) -> dict[str, Any]:
        """The repetition's `signal` item (harness.signal.section), the successor's part in
        `successor`."""
        assert self.journal is not None and self.killed_ns is not None
        new_pod_result = self.new_pod if self.new_pod is not None else NewPodResult(
            error="the new pod check did not run")
        successor = self.successor if self.successor is not None else NewPodResult(
            error="the successor did not carry the conversations on")
        attribution = attribute([*self.journal.tally.failures, *successor.decrypt_failures,
                                 *new_pod_result.decrypt_failures], check, history)
        spans = [(w.injected_ns, w.cleared_ns if w.cleared_ns is not None else w.injected_ns)
                 for w in windows]
        figures = self.figures()
        item = build_section(
            scenario=scenario, params=self.params, target=target, contrast=contrast,
            workload=KilledRun(self.journal, self.companies, self.killed_ns,
                               self.params.workload.message_rate_hz),
            new_pod=new_pod_result, check=check, attribution=attribution, history=history,
            windows=spans, engine_stats={}, notes=self.notes, target_errors=self.target_errors,
            duration_s=time.monotonic() - self.started, successor=successor, crash=figures)
        item["in_flight_at_kill"] = (self.in_flight.get("unsent", 0)
                                     + sum(self.in_hand_rejected.values()))
        return item


def _committing(journal: Journal, child_history: History) -> set[int]:
    """The envelopes in hand at the kill whose recipient had invoked a write since it began
    to decrypt them: that decrypt may have committed (consumed its message key), so a
    failure to decrypt them again is no verdict on the store. One op at a time per company:
    every write of the recipient after `receiving` is that decrypt's. An envelope in hand
    whose decrypt wrote nothing must decrypt again: its failure counts."""
    in_hand = [p for p in journal.unsettled() if p.in_hand]
    if not in_hand:
        return set()
    writes: dict[str, list[int]] = {}
    for op in child_history.ops():
        if op.is_write:
            writes.setdefault(op.company, []).append(op.invoke_ns)
    return {p.seq for p in in_hand
            if any(t >= (p.receiving_ns or 0) for t in writes.get(p.recipient, ()))}


def _in_flight(journal: Journal, committing: set[int]) -> dict[str, int]:
    """The deliveries without a verdict at the kill, by what becomes of them."""
    unsettled = {(p.message, p.recipient) for p in journal.unsettled()}
    posted = {(p.message, p.recipient) for p in journal.posted.values()}
    counts = {"deliveries": 0, "with_the_server": 0, "in_hand": 0, "in_hand_written": 0,
              "unsent": 0, "retry_under_way": 0}
    for delivery in journal.tally.deliveries():
        if delivery.status != "pending":
            continue
        ref = (delivery.message.id, delivery.recipient)
        counts["deliveries"] += 1
        if ref in unsettled:
            counts["with_the_server"] += 1  # received by the successor
        elif delivery.failures:
            counts["retry_under_way"] += 1  # already counted undecryptable
        elif ref not in posted:
            counts["unsent"] += 1  # the application's outbox died with the process
    counts["in_hand"] = sum(1 for p in journal.unsettled() if p.in_hand)
    counts["in_hand_written"] = len(committing)
    return counts


def _conversation(conversations: list[Conversation], conv_id: str, sender: str,
                  recipient: str) -> Conversation:
    """The message's conversation (a set-up handshake between two members of a group has
    none in the topology: a 1:1 of its own)."""
    for conv in conversations:
        if conv.id == conv_id:
            return conv
    return Conversation(conv_id, "direct", [sender, recipient])


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _kill(processes: list[psutil.Process]) -> None:
    """SIGKILL each (psutil checks it is still the process noted, not a reused pid)."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
