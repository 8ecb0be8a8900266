"""Real Signal conversations through the store under test: the `signal` workload.

Shaped like the chaos workload (harness/chaos/workload.py): built on an opened target with a
History, then `setup()`, `start()`, `stop()`, `stats()`; plus `section()` (the report's
`signal` item) and `new_pod_check(target)`.

- setup: every company gets a paired identity (Baileys' initAuthCreds, uploaded pre-keys, the
  signed pre-key in creds: the engine's `pair`), publishes its bundle to the server stand-in,
  then every conversation exchanges a first message each way (sessions from `pkmsg`, sender
  keys distributed) before the measured traffic starts;
- traffic: each company starts a new message every ~1/`message_rate_hz` s in one of its
  conversations (1:1 or group), while its queue is short; a recipient answers a 1:1 message
  with probability `reply_probability` (answers make the ratchet turn); before a group message,
  with probability `rekey_probability`, the group's membership changes and every member makes
  a new sender key before its next send;
- one worker per company runs its engine ops one at a time (sends, decrypts, retry receipts,
  resends), as one Baileys socket would; companies run concurrently.

Baileys' recovery path, modelled (messages-recv.js / messages-send.js): a failed decrypt is
acknowledged and answered with a retry receipt (count n; from n = 2 on it carries a fresh
pre-key of the recipient, written to its store first); the sender re-establishes the session
from that bundle (n = 1: from a bundle the server hands out) and sends the message again, up to
`max_retries` times, after which it is lost for good. A retry receipt or a resend that fails
(the store is down) loses the message, as in Baileys. A send that fails (the store threw) is
retried by the application later: it waits, it is not lost. Every session injected where one
was already established counts as re-established, with its reason: a retry, a store read that
failed inside `validateSession` (Baileys takes it for "no session"), or a session the store no
longer has.

`journal`, when given, receives as it happens everything another process needs to count and
carry on these conversations after this one is killed (client-crash): the topology and every
membership change, every tally change (tally.py), every envelope posted to the server
stand-in (its ciphertext: what the WhatsApp server would hold; never a key) and when its
recipient started (`receiving`) and finished (`settle`) processing it, traffic start and stop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import math
import os
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from harness.authstate import codec
from harness.errors import HarnessError
from harness.metrics.history import History
from harness.signal.engine import SignalEngine, discard_start
from harness.signal.recorder import Processes
from harness.signal.server import Envelope, Server
from harness.signal.tally import Delivery, Failure, Message, Sink, Tally, label
from harness.signal.topology import Conversation, Topology, build_topology, involved_keys

log = logging.getLogger("harness.signal")


class SignalSetupError(HarnessError):
    """The target failed while pairing the companies, before any fault: nothing to measure."""


@dataclass(frozen=True)
class SignalConfig:
    message_rate_hz: float = 0.5  # new messages per company per second (answers come on top)
    reply_probability: float = 0.6
    group_share: float = 0.25  # of new messages, the share sent to a group
    contacts: int = 2  # 1:1 partners per company
    groups_per_company: float = 0.25  # groups = ceil(companies x this)
    group_size: tuple[int, int] = (3, 8)
    rekey_probability: float = 0.03  # per group message: a membership change first
    pre_keys: int = 20  # uploaded at pairing
    pre_key_top_up: int = 10  # uploaded when the server holds 5 or fewer
    max_retries: int = 5  # Baileys' maxMsgRetryCount
    duplicate_rate: float = 0.0  # stanzas delivered again after their ack
    delay_s: tuple[float, float] = (0.0, 0.0)  # delivery delay, uniform
    resend_after_s: float = 0.5  # a failed send is retried by the application after this
    send_attempts: int = 40  # ... this many times, then the message is lost ("never sent")
    commit_retries: int = 10  # Baileys' socket: transactionOpts.maxCommitRetries
    commit_delay_ms: int = 3000  # ... and delayBetweenTriesMs
    op_timeout_s: float = 60.0
    setup_concurrency: int = 8
    backlog: int = 3  # a company starts a new message only while its queue is shorter
    drain_s: float = 60.0  # stop(): at most this long for messages in flight to settle
    seed: int = 0

    def to_doc(self) -> dict[str, Any]:
        """JSON-ready (for a process started with these settings: client-crash's child)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> SignalConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()})


class _Worker:
    """One company's ops, one at a time, in submission order."""

    def __init__(self, company: str) -> None:
        self.company = company
        self.queue: asyncio.Queue[Callable[[], Awaitable[None]] | None] = asyncio.Queue()
        self.busy = False
        self.task: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        return self.queue.qsize() + self.busy


class SignalWorkload:
    """See the module docstring."""

    def __init__(self, target: Any, companies: Sequence[str], history: History, *,
                 config: SignalConfig | None = None, run_tag: str = "s",
                 process_base: int = 0, journal: Sink | None = None) -> None:
        self.config = config or SignalConfig()
        self.target = target
        self.history = history
        self.run_tag = run_tag
        self.companies = list(companies)
        self.processes = Processes(process_base + 1_000_000)
        self.rng = random.Random(f"signal/{self.config.seed}")
        groups = max(1, math.ceil(len(self.companies) * self.config.groups_per_company))
        self.topology: Topology = build_topology(
            self.companies, contacts=self.config.contacts, groups=groups,
            group_size=self.config.group_size, rng=self.rng)
        self.company_of = {jid: c for c, jid in self.topology.jids.items()}
        self._conversations = {c.id: c for c in self.topology.conversations}
        self.journal = journal
        self.tally = Tally(sink=journal)
        self.server = Server(self._deliver, self.rng, delay_s=self.config.delay_s,
                             duplicate_rate=self.config.duplicate_rate)
        self.engine: SignalEngine | None = None
        self._engine_start: asyncio.Future[SignalEngine] | None = None
        self.sessions: set[tuple[str, str]] = set()  # (owner, peer) with an established session
        self.pre_key_of: dict[tuple[str, str], int | None] = {}  # (owner, peer) -> bundle pre-key
        self._workers = {c: _Worker(c) for c in self.companies}
        self._ids = itertools.count(1)
        self._seqs = itertools.count(1)  # envelopes, in the order they were posted
        self._outstanding = 0
        self._uploading: set[str] = set()
        self._generators: list[asyncio.Task[None]] = []
        self._stopping = True
        self.setup_s: float | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.started_ns: int | None = None
        self.stopped_ns: int | None = None
        self._cpu_at_start: dict[str, float] = {}
        self.cpu_s: dict[str, float] | None = None  # CPU seconds during the traffic

    @property
    def harness_errors(self) -> Counter[str]:
        return self.tally.harness_errors

    def _note(self, event: dict[str, Any]) -> None:
        if self.journal is not None:
            self.journal(event)

    # -- lifecycle -------------------------------------------------------------------------------
    def start_engine(self) -> asyncio.Future[SignalEngine]:
        """Start the engine now, if not yet: Node.js loads Baileys on a core of its own while
        the caller does other set-up (a chaos scenario pairs its other companies); `setup()`
        awaits the same start."""
        if self._engine_start is None:
            c = self.config
            self._engine_start = asyncio.ensure_future(SignalEngine.start(
                self.target, self.history, self.processes, op_timeout_s=c.op_timeout_s,
                commit_retries=c.commit_retries, commit_delay_ms=c.commit_delay_ms))
        return self._engine_start

    async def setup(self) -> None:
        """Engine, workers, paired identities; then a first exchange in every conversation."""
        t0 = time.monotonic()
        c = self.config
        self._note({"e": "topology", **self.topology.to_doc()})
        self.engine = await self.start_engine()
        for worker in self._workers.values():
            worker.task = asyncio.create_task(self._work(worker), name=f"signal-{worker.company}")
        gate = asyncio.Semaphore(c.setup_concurrency)

        async def pair(company: str) -> None:
            async with gate:
                await self._pair(company)

        await asyncio.gather(*(pair(company) for company in self.companies))
        # Every two companies that will talk start their session once, one side first (its
        # pkmsg gives the other side the session; no answer needed): if
        # both started one at the same time (simultaneous initiation), libsignal-node would
        # keep failing one direction ("Over 2000 messages into the future!", Bad MAC) whatever
        # the store does. Then each group member sends once (sender keys distributed).
        for a, b in self.topology.pairs():
            conv = self._handshake_conversation(a, b)
            self._submit(a, lambda conv=conv, a=a: self._new_message(conv, a))
        await self.drain(c.drain_s)
        for conv in self.topology.groups:
            for member in conv.members:
                self._submit(member, lambda conv=conv, m=member: self._new_message(conv, m))
        await self.drain(c.drain_s)
        self.setup_s = time.monotonic() - t0
        self._note({"e": "setup", "s": round(self.setup_s, 3)})

    async def _pair(self, company: str) -> None:
        assert self.engine is not None
        try:
            await self.engine.open(company, self.topology.jids[company])
        except Exception as exc:
            raise SignalSetupError(
                f"signal setup: loading company {company} failed before any fault: "
                f"{type(exc).__name__}: {exc}",
                hint="the target fails on a healthy database; run the property suite against "
                     "it first (`harness run --suite property --target ...`)") from exc
        paired = await self.engine.op("pair", company, pre_keys=self.config.pre_keys)
        if "error" in paired:
            raise SignalSetupError(
                f"signal setup: pairing company {company} failed before any fault: "
                f"{label(paired['error'])}",
                hint="the target fails on a healthy database; run the property suite first")
        self.server.publish(company, paired["bundle"], paired["pre_keys"])

    def start(self) -> None:
        """Start generating messages (after `setup`)."""
        if self._generators:
            raise RuntimeError("the signal workload is already running")
        self._stopping = False
        self.started_at = time.monotonic()
        self.started_ns = time.monotonic_ns()
        self._cpu_at_start = self._cpu()
        self._generators = [asyncio.create_task(self._generate(c), name=f"signal-gen-{c}")
                            for c in self.companies]
        self._note({"e": "start", "t": self.started_ns})

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop new messages, then let those in flight settle (at most `drain_s`)."""
        self._stopping = True
        for task in self._generators:
            task.cancel()
        await asyncio.gather(*self._generators, return_exceptions=True)
        self._generators = []
        self.stopped_at = time.monotonic()
        self.stopped_ns = time.monotonic_ns()
        self._note({"e": "stop", "t": self.stopped_ns})
        self.cpu_s = self._cpu_since(self._cpu_at_start)
        await self.drain(self.config.drain_s if grace_s is None else grace_s)

    async def drain(self, timeout_s: float) -> bool:
        """Wait until nothing is queued, running or in the server; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._outstanding == 0 and self.server.idle:
                return True
            await asyncio.sleep(0.05)
        log.warning("signal workload: %d jobs still outstanding after %.0f s",
                    self._outstanding, timeout_s)
        return False

    async def close(self) -> None:
        """Stop the workers and the engine; whatever is still pending is counted lost."""
        self._stopping = True
        for worker in self._workers.values():
            if worker.task is not None:
                worker.task.cancel()
        await asyncio.gather(*(w.task for w in self._workers.values() if w.task),
                             return_exceptions=True)
        for delivery in self.tally.deliveries():
            if delivery.status == "pending":
                self.tally.lost(delivery, "never sent" if not delivery.message.sent
                                else "in flight at the end")
        starting, self._engine_start = self._engine_start, None
        if self.engine is None:  # started ahead, never set up
            await discard_start(starting)
        if self.engine is not None:
            await self.engine.close()

    @property
    def running(self) -> bool:
        return bool(self._generators)

    # -- jobs ------------------------------------------------------------------------------------
    def _submit(self, company: str, job: Callable[[], Awaitable[None]]) -> None:
        self._outstanding += 1
        self._workers[company].queue.put_nowait(job)

    def _later(self, delay_s: float, company: str, job: Callable[[], Awaitable[None]]) -> None:
        self._outstanding += 1

        def fire() -> None:
            self._outstanding -= 1
            self._submit(company, job)

        asyncio.get_running_loop().call_later(delay_s, fire)

    async def _work(self, worker: _Worker) -> None:
        while True:
            job = await worker.queue.get()
            if job is None:
                return
            worker.busy = True
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a harness or engine failure, not a verdict on the store
                self.tally.harness_error(f"{type(exc).__name__}: {str(exc)[:120]}")
                log.exception("signal worker %s: job failed", worker.company)
            finally:
                worker.busy = False
                self._outstanding -= 1

    async def _generate(self, company: str) -> None:
        mean = 1.0 / self.config.message_rate_hz
        rng = random.Random(f"signal/{self.config.seed}/{company}")
        convs = self.topology.by_company[company]
        direct = [c for c in convs if c.kind == "direct"]
        groups = [c for c in convs if c.kind == "group"]
        await asyncio.sleep(rng.uniform(0, mean))
        while not self._stopping:
            if self._workers[company].backlog < self.config.backlog:
                use_group = groups and (not direct or rng.random() < self.config.group_share)
                conv = rng.choice(groups if use_group else direct)
                if company in conv.members:
                    self._submit(company, lambda conv=conv: self._new_message(conv, company))
            await asyncio.sleep(rng.uniform(0.5 * mean, 1.5 * mean))

    # -- sending ---------------------------------------------------------------------------------
    def _jid(self, company: str) -> str:
        return self.topology.jids[company]

    async def _new_message(self, conv: Conversation, sender: str, *,
                           always_answer: bool = False) -> None:
        if conv.kind == "group":
            if self.rng.random() < self.config.rekey_probability:
                self._membership_change(conv, sender)
            if sender not in conv.members:
                return
        message_id = f"{self.run_tag}{next(self._ids)}"
        message = Message(message_id, conv.id, conv.kind, sender,
                          f"m:{message_id}".encode(), time.monotonic_ns(),
                          always_answer=always_answer)
        self.tally.new_message(message, conv.others(sender))
        await self._send(message, conv)

    async def _send(self, message: Message, conv: Conversation) -> None:
        """An application send: on failure it waits and is tried again (messages wait)."""
        if conv.kind == "direct":
            error = await self._send_direct(message, conv, message.deliveries)
        else:
            if message.sender in conv.rekey_due:
                rekeyed = await self._op("rekey", message.sender, group=conv.jid)
                if "error" not in rekeyed:
                    conv.rekey_due.discard(message.sender)
            error = await self._send_group(message, conv, list(message.deliveries))
        if error is None:
            self.tally.sent(message)
            return
        failed = label(error)
        self.tally.send_failed(failed, message)
        if len(message.send_failures) >= self.config.send_attempts:
            for delivery in message.deliveries.values():
                self.tally.lost(delivery, f"never sent ({failed})")
            return
        self._later(self.config.resend_after_s, message.sender,
                    lambda: self._send(message, conv))

    async def _send_direct(self, message: Message, conv: Conversation,
                           recipients: Any, *, bundle: dict[str, Any] | None = None,
                           reason: str = "") -> dict[str, Any] | None:
        """Encrypt and post; the error dict when the send failed, else None."""
        sender = message.sender
        peer = next(iter(recipients))
        payload = {"to": self._jid(peer), "plaintext": message.plaintext}
        result = await self._op("send", sender, **payload, bundle=bundle)
        if result.get("need_bundle"):
            reason = self._why_bundle(sender, peer, result)
            bundle = self._bundle(peer)
            result = await self._op("send", sender, **payload, bundle=bundle)
        if "error" in result:
            return dict(result["error"])
        if bundle is not None:
            self._established(sender, peer, reason, bundle)
        self._post(Envelope(message.deliveries[peer], (sender, peer),
                            {"type": result["type"], "ciphertext": result["ciphertext"]}))
        return None

    async def _send_group(self, message: Message, conv: Conversation, recipients: list[str], *,
                          only: str | None = None, bundle: dict[str, Any] | None = None,
                          reason: str = "") -> dict[str, Any] | None:
        sender = message.sender
        bundles: dict[str, dict[str, Any]] = {}
        reasons: dict[str, str] = {}
        if only is not None and bundle is not None:
            bundles[self._jid(only)] = bundle
            reasons[self._jid(only)] = reason
        payload = {"group": conv.jid, "members": [self._jid(m) for m in recipients],
                   "plaintext": message.plaintext,
                   "only": None if only is None else self._jid(only)}
        result = await self._op("group_send", sender, **payload, bundles=bundles)
        if result.get("need_bundles"):
            for jid, _why in result["need_bundles"]:
                peer = self.company_of[jid]
                reasons[jid] = self._why_bundle(sender, peer, result)
                bundles[jid] = self._bundle(peer)
            result = await self._op("group_send", sender, **payload, bundles=bundles)
        if "error" in result:
            return dict(result["error"])
        for jid, used in bundles.items():
            self._established(sender, self.company_of[jid], reasons.get(jid, ""), used)
        skdm = {jid: part for jid, part in result["skdm"]}
        for member in recipients:
            self._post(Envelope(
                message.deliveries[member], (sender, member),
                {"ciphertext": result["ciphertext"], "skdm": skdm.get(self._jid(member))}))
        return None

    def _post(self, envelope: Envelope) -> None:
        """To the server stand-in (numbered, and journaled first: what the server holds)."""
        envelope.seq = next(self._seqs)
        if self.journal is not None:
            self.journal({"e": "post", "n": envelope.seq, "id": envelope.delivery.message.id,
                          "to": envelope.delivery.recipient, "ch": list(envelope.channel),
                          "p": codec.encode(envelope.payload)})
        self.server.post(envelope)

    def _why_bundle(self, owner: str, peer: str, result: dict[str, Any]) -> str:
        """Why a send needed a new session: Baileys' validateSession answers "no session" both
        when the store has none and when reading it failed (loadSession swallows the error)."""
        if result.get("store_failures") or result.get("reason") == "validation error":
            return "store read failed (Baileys took it for no session)"
        return "session missing" if (owner, peer) in self.sessions else "first contact"

    def _established(self, owner: str, peer: str, reason: str, bundle: dict[str, Any]) -> None:
        pre_key = bundle.get("pre_key")
        self.pre_key_of[(owner, peer)] = int(pre_key[0]) if pre_key else None
        if (owner, peer) in self.sessions:
            self.tally.reestablish(owner, peer, reason or "re-injected")
        self.sessions.add((owner, peer))

    def _bundle(self, company: str) -> dict[str, Any]:
        bundle = self.server.fetch_bundle(company)
        if self.server.low(company) and company not in self._uploading:
            self._uploading.add(company)
            self._submit(company, lambda: self._upload(company))
        return bundle

    async def _upload(self, company: str) -> None:
        try:
            result = await self._op("upload", company, count=self.config.pre_key_top_up)
            if "error" in result:
                self.tally.send_failed(f"pre-key upload: {label(result['error'])}")
            else:
                self.server.upload(company, result["pre_keys"])
        finally:
            self._uploading.discard(company)

    def _membership_change(self, conv: Conversation, sender: str) -> None:
        outside = [m for m in conv.pool if m not in conv.members]
        removable = [m for m in conv.members if m != sender]
        if len(conv.members) > 3 and removable and (not outside or self.rng.random() < 0.5):
            conv.members.remove(self.rng.choice(removable))
        elif outside:
            conv.members.append(self.rng.choice(outside))
        else:
            return
        conv.rekey_due = set(conv.members)
        self.tally.rekeyed()
        self._note({"e": "members", "conv": conv.id, "members": list(conv.members)})

    # -- receiving -------------------------------------------------------------------------------
    def _deliver(self, envelope: Envelope) -> None:
        recipient = envelope.channel[1]
        self._submit(recipient, lambda: self._receive(envelope))

    async def _receive(self, envelope: Envelope) -> None:
        delivery: Delivery = envelope.delivery
        message = delivery.message
        recipient, sender = delivery.recipient, message.sender
        conv = self._conversation(message.conversation)
        if not envelope.duplicate:  # until `settle`: in hand (a kill leaves it undecided)
            self._note({"e": "receiving", "n": envelope.seq, "t": time.monotonic_ns()})
        if message.kind == "direct":
            result = await self._op("receive", recipient, **{
                "from": self._jid(sender), "type": envelope.payload["type"],
                "ciphertext": envelope.payload["ciphertext"]})
        else:
            result = await self._op("group_receive", recipient, **{
                "group": conv.jid, "from": self._jid(sender),
                "ciphertext": envelope.payload["ciphertext"],
                "skdm": envelope.payload.get("skdm")})
        self.server.settle(envelope)  # Baileys acks every stanza, decrypted or not
        if envelope.duplicate:
            self.tally.duplicate("decrypted again" if "plaintext" in result else "rejected")
            return
        delivery.attempts += 1
        if result.get("plaintext") == message.plaintext:
            self.tally.decrypted(delivery)
            self._note({"e": "settle", "n": envelope.seq})
            if message.kind == "direct" and envelope.payload["type"] == "pkmsg":
                self.sessions.add((recipient, sender))
            if message.kind == "direct" and (message.always_answer or (
                    not self._stopping and self.rng.random() < self.config.reply_probability)):
                self._submit(recipient, lambda: self._new_message(conv, recipient))
            return
        error = result.get("error") or {"name": "WrongPlaintext",
                                        "message": "decrypted to another plaintext"}
        self.tally.failed(delivery, Failure(
            time.monotonic_ns(), message.id, sender, recipient, label(error), dict(error),
            self._keys_of(message, recipient, envelope, error.get("stage")),
            int(result.get("store_failures") or 0), delivery.attempts))
        self._note({"e": "settle", "n": envelope.seq})
        await self._retry_receipt(delivery, conv)

    async def _retry_receipt(self, delivery: Delivery, conv: Conversation) -> None:
        delivery.retries += 1
        count = delivery.retries
        if count > self.config.max_retries:
            self.tally.lost(delivery, "retries exhausted")
            return
        bundle = None
        if count > 1:  # the receipt carries a fresh pre-key of ours, written to our store
            keys = await self._op("retry_keys", delivery.recipient)
            if "error" in keys:
                failed = label(keys["error"])
                self.tally.retry_failed(failed)
                self.tally.lost(delivery, f"retry receipt failed ({failed})")
                return
            bundle = keys["bundle"]
        self.tally.retried()
        self._submit(delivery.message.sender,
                     lambda: self._resend(delivery, conv, bundle))

    async def _resend(self, delivery: Delivery, conv: Conversation,
                      bundle: dict[str, Any] | None) -> None:
        """sendMessagesAgain: re-establish from the receipt's bundle (or the server's), resend."""
        peer = delivery.recipient
        message = delivery.message
        if bundle is None:
            bundle = self._bundle(peer)
        if message.kind == "direct":
            error = await self._send_direct(message, conv, [peer], bundle=bundle,
                                            reason="retry")
        else:
            forgot = await self._op("forget_memory", message.sender, group=conv.jid)
            error = forgot.get("error") or await self._send_group(
                message, conv, [peer], only=peer, bundle=bundle, reason="retry")
        if error is not None:
            self.tally.lost(delivery, f"resend failed ({label(error)})")

    # -- helpers ---------------------------------------------------------------------------------
    async def _op(self, name: str, company: str, **payload: Any) -> dict[str, Any]:
        """One engine op; an exception (the engine or the sidecar failed, not libsignal) comes
        back as an error result marked `harness`, so every message still gets a verdict."""
        assert self.engine is not None
        try:
            return await self.engine.op(name, company, **payload)
        except Exception as exc:
            self.tally.harness_error(f"{name}: {type(exc).__name__}: {str(exc)[:120]}")
            return {"error": {"name": type(exc).__name__, "message": str(exc)[:300],
                              "harness": True}}

    def _conversation(self, conv_id: str) -> Conversation:
        return self._conversations[conv_id]

    def _handshake_conversation(self, a: str, b: str) -> Conversation:
        """The 1:1 conversation of two companies: their direct one, else a first contact made
        for the handshake (two members of a group who have no direct conversation)."""
        for conv in self.topology.direct:
            if set(conv.members) == {a, b}:
                return conv
        conv = Conversation(f"h-{a}-{b}", "direct", [a, b])
        self._conversations[conv.id] = conv
        return conv

    def _keys_of(self, message: Message, recipient: str, envelope: Envelope,
                 stage: str | None) -> list[tuple[str, str, str]]:
        """The (company, key type, key id) a failed decrypt involved, at both ends."""
        pkmsg = (envelope.payload.get("type") == "pkmsg"
                 or (envelope.payload.get("skdm") or {}).get("type") == "pkmsg")
        return involved_keys(self.topology, self._conversation(message.conversation),
                             message.sender, recipient, pkmsg=pkmsg, stage=stage,
                             pre_key=self.pre_key_of.get((message.sender, recipient)))

    def _cpu(self) -> dict[str, float]:
        """CPU seconds so far of this process (driver, bridge, store client, history) and of
        the Node.js sidecar running the engine (Baileys, libsignal, JSON)."""
        import psutil

        pids = {"python": os.getpid()}
        if self.engine is not None and self.engine.sidecar is not None:
            pids["node"] = self.engine.sidecar.proc.pid
        out = {}
        for name, pid in pids.items():
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.Error:
                continue
            out[name] = times.user + times.system
        return out

    def _cpu_since(self, start: dict[str, float]) -> dict[str, float]:
        now = self._cpu()
        return {k: round(now[k] - start[k], 2) for k in start if k in now}

    # -- results ---------------------------------------------------------------------------------
    def traffic_window_s(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.stopped_at or time.monotonic()) - self.started_at

    def stats(self) -> dict[str, Any]:
        """The workload's own counts (the chaos runner's `workload` field)."""
        summary = self.tally.summary()
        return {"companies": len(self.companies),
                "conversations": {"direct": len(self.topology.direct),
                                  "groups": len(self.topology.groups)},
                "messages": summary["messages"], "deliveries": summary["deliveries"],
                "message_rate_hz": self.config.message_rate_hz,
                "setup_s": None if self.setup_s is None else round(self.setup_s, 3),
                "harness_errors": dict(self.harness_errors),
                "server": dict(self.server.counts),
                "time_split": self.engine.time_split() if self.engine else None,
                "cpu_s": self.cpu_s}
