"""Steady Baileys-shaped traffic: one asyncio worker per company, every call in the History.

Per company (reference/baileys-auth-state.md, "What traffic a store sees"):
- setup: `load()` (fresh creds), save paired creds, one upload of pre-keys (Baileys' 812 for a
  few companies, fewer for the rest to keep setup and the final read short), sessions and
  identity keys of its contacts, its own and its group members' sender keys (a steady state:
  every member has sent before) and sender-key memories of its groups. Every key the messages
  read exists, so read availability during a fault measures what the target can answer from
  its cache (a key it never saw cannot be proven absent while PostgreSQL is away);
- then messages, each a few reads and one `keys.set` (Baileys' transaction layer commits a
  message's mutations in one call): outgoing 1:1 (session get + set of 1-3 devices), incoming
  1:1 (session get + set; a pkmsg also reads the pre-key and the identity key, deletes the
  pre-key and sometimes rewrites the identity), group send (sender key + sender-key memory
  rewrite), incoming group message (sender key rewrite), creds save (creds.update), reconnect
  (a new `load()`). Pre-keys are topped up by 5 when 5 or fewer are left, as Baileys does.

Think time is uniform in [0.5, 1.5] x 1 / `message_rate_hz` (not exponential: its long tail
would dominate the figures), so each company writes several times a second. RTO and MTTD are
measured at a company's first operation after the fault cleared / began, so the spacing of its
operations bounds their resolution: at 4 messages/s a company's next write comes at most
~0.4 s (1.5 / rate + the message's reads) after any instant, ~0.2 s on average.

Deliberate departures from Baileys: a failed read does not abort the message (Baileys would
fail to decrypt and write nothing); the workload goes on writing so every fault sees writes.
A worker whose op ended `info` continues as a new Jepsen process (that op may still land).
When a reload returns fresh creds over a paired identity, the worker carries on with them, as
Baileys would (it starts pairing anew and saves them): exactly the forced logout the checker
must name.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.chaos.nemesis_api import BulkWrite
from harness.chaos.values import ValueFactory, digest
from harness.errors import HarnessError
from harness.metrics.history import History
from harness.target_driver import DEFAULT_OP_TIMEOUT_S, Driver, Outcome

log = logging.getLogger("harness.chaos")

FULL_PRE_KEYS = 812  # Baileys' first upload
TOP_UP_PRE_KEYS = 5  # ... and its later top-ups


class WorkloadSetupError(HarnessError):
    """The target failed on a healthy database before any fault: nothing to measure."""


@dataclass(frozen=True)
class WorkloadConfig:
    message_rate_hz: float = 4.0  # messages per second per company (each ~1 write)
    full_pre_key_companies: int = 5  # companies uploading Baileys' full 812 pre-keys at setup
    pre_keys: int = 60  # pre-keys of the other companies
    contacts: int = 10
    groups: int = 3
    group_size: int = 6  # contacts per group
    setup_concurrency: int = 16
    op_timeout_s: float = DEFAULT_OP_TIMEOUT_S
    seed: int = 0


# message kind -> weight
MESSAGE_MIX: dict[str, int] = {"outgoing": 35, "incoming": 30, "group_send": 15,
                               "group_incoming": 12, "creds_save": 6, "reconnect": 2}


@dataclass
class Contact:
    user: str
    devices: list[str]  # signal addresses "user.device": session and identity-key ids

    def jid(self, address: str) -> str:
        user, _, device = address.partition(".")
        return f"{user}:{device}@s.whatsapp.net"


@dataclass
class Group:
    jid: str
    members: list[Contact]

    def devices(self) -> list[str]:
        return [m.jid(d) for m in self.members for d in m.devices]


@dataclass
class Company:
    id: str
    phone: str
    process: int
    rng: random.Random
    state: Any = None
    contacts: list[Contact] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    pre_key_ids: list[int] = field(default_factory=list)
    next_pre_key_id: int = 1


class Workload:
    """Runs the traffic of `companies` against one target; see the module docstring."""

    def __init__(self, target: Any, companies: Sequence[str], history: History, *,
                 config: WorkloadConfig | None = None, run_tag: str = "w",
                 process_base: int = 0, driver: Driver | None = None) -> None:
        self.config = config or WorkloadConfig()
        self.history = history
        self.driver = driver or Driver(target, history, op_timeout_s=self.config.op_timeout_s)
        self.values = ValueFactory(run_tag, self.config.seed)
        self._processes = itertools.count(process_base)
        seed = self.config.seed
        self.companies = [Company(c, f"5511{9_000_000_00 + i:09d}", self.new_process(),
                                  random.Random(f"{seed}/{c}"))
                          for i, c in enumerate(companies)]
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._bulk_tasks: set[asyncio.Task[None]] = set()
        self.messages: Counter[str] = Counter()
        self.setup_s: float | None = None
        self.started_at: float | None = None
        self.stopped_at: float | None = None

    def new_process(self) -> int:
        return next(self._processes)

    # -- setup -----------------------------------------------------------------------------------
    async def setup(self) -> None:
        """Pair every company and give it keys, `setup_concurrency` companies at a time."""
        started = time.monotonic()
        gate = asyncio.Semaphore(self.config.setup_concurrency)

        async def one(index: int, company: Company) -> None:
            async with gate:
                await self._setup_company(index, company)

        await asyncio.gather(*(one(i, c) for i, c in enumerate(self.companies)))
        self.setup_s = time.monotonic() - started

    async def _setup_company(self, index: int, c: Company) -> None:
        d, v, rng = self.driver, self.values, c.rng

        async def must(step: str, outcome: Outcome) -> None:
            if outcome != "ok":
                raise WorkloadSetupError(
                    f"setup of company {c.id} failed at {step} ({outcome}) before any fault",
                    hint="the target fails on a healthy database; run the property suite "
                    "against it first (`harness run --suite property --target ...`)")

        outcome, c.state = await d.load(c.process, c.id)
        await must("load", outcome)
        paired = v.paired_creds(c.phone)
        c.state.creds.clear()
        c.state.creds.update(paired)
        await must("creds save", await d.save_creds(c.process, c.id, c.state))

        full = index < self.config.full_pre_key_companies
        count = FULL_PRE_KEYS if full else self.config.pre_keys
        await must("pre-key upload", await d.set(c.process, c.id, c.state,
                                                 {"pre-key": v.pre_keys(1, count)}))
        c.pre_key_ids = list(range(1, count + 1))
        c.next_pre_key_id = count + 1

        for _ in range(self.config.contacts):
            user = f"55{rng.randrange(10**10, 10**11)}"
            c.contacts.append(Contact(user, [f"{user}.{dev}"
                                             for dev in range(rng.choice((1, 2, 2, 3)))]))
        addresses = [a for contact in c.contacts for a in contact.devices]
        await must("sessions", await d.set(c.process, c.id, c.state, {
            "session": {a: v.session(rng.choice((900, 1200, 1500))) for a in addresses},
            "identity-key": {a: v.identity_key() for a in addresses}}))

        for _ in range(self.config.groups):
            group = Group(f"{rng.randrange(10**17, 10**18)}@g.us",
                          rng.sample(c.contacts, min(self.config.group_size, len(c.contacts))))
            c.groups.append(group)
        sender_keys = {self._own_sender_key(c, g): v.sender_key() for g in c.groups}
        sender_keys.update({key_id: v.sender_key() for g in c.groups
                            for key_id in self._member_sender_keys(g)})
        await must("groups", await d.set(c.process, c.id, c.state, {
            "sender-key": sender_keys,
            "sender-key-memory": {g.jid: v.sender_key_memory(g.devices()) for g in c.groups}}))

    @staticmethod
    def _own_sender_key(c: Company, group: Group) -> str:
        return f"{group.jid}::{c.phone}::0"

    @staticmethod
    def _member_sender_keys(group: Group) -> list[str]:
        """`group::user::device` of every member device: the sender keys their messages use."""
        return [f"{group.jid}::{m.user}::{address.split('.')[1]}"
                for m in group.members for address in m.devices]

    # -- running ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start one worker per company (after `setup`)."""
        if self._tasks:
            raise RuntimeError("the workload is already running")
        self._stopping.clear()
        self.started_at = time.monotonic()
        self._tasks = [asyncio.create_task(self._run(c), name=f"chaos-{c.id}")
                       for c in self.companies]

    async def stop(self, grace_s: float = 5.0) -> None:
        """Let each worker finish its message (at most `grace_s`), then cancel the rest: an
        in-flight write cancelled so is recorded `info`."""
        self._stopping.set()
        tasks, self._tasks = self._tasks + list(self._bulk_tasks), []
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("chaos workload: %d workers still busy after %.1f s; cancelled",
                            len(pending), grace_s)
                await asyncio.wait(pending, timeout=grace_s)
            for task in tasks:
                if task.done() and not task.cancelled() and task.exception() is not None:
                    log.error("chaos worker %s died: %r", task.get_name(), task.exception())
        self.stopped_at = time.monotonic()

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def _run(self, c: Company) -> None:
        mean = 1.0 / self.config.message_rate_hz
        kinds, weights = list(MESSAGE_MIX), list(MESSAGE_MIX.values())
        handlers: dict[str, Callable[[Company], Awaitable[None]]] = {
            "outgoing": self._outgoing, "incoming": self._incoming,
            "group_send": self._group_send, "group_incoming": self._group_incoming,
            "creds_save": self._creds_save, "reconnect": self._reconnect}
        await asyncio.sleep(c.rng.uniform(0, mean))  # desynchronise the companies
        while not self._stopping.is_set():
            await self._before_message(c)
            if self._stopping.is_set():
                break
            kind = c.rng.choices(kinds, weights)[0]
            await handlers[kind](c)
            self.messages[kind] += 1
            if self._stopping.is_set():
                break
            await asyncio.sleep(c.rng.uniform(0.5 * mean, 1.5 * mean))

    async def _before_message(self, c: Company) -> None:
        """Awaited before each message of `c` (a subclass may hold a company here: the
        deploy-overlap scenario hands companies from one instance to the other)."""

    def _after(self, c: Company, outcome: Outcome) -> Outcome:
        if outcome == "info":  # Jepsen: that op may still land; carry on as a new process
            c.process = self.new_process()
        return outcome

    async def _write(self, c: Company, data: dict[str, dict[str, Any]]) -> Outcome:
        return self._after(c, await self.driver.set(c.process, c.id, c.state, data))

    async def _read(self, c: Company, key_type: str, ids: list[str]) -> None:
        await self.driver.get(c.process, c.id, c.state, key_type, ids)

    async def _outgoing(self, c: Company) -> None:
        contact = c.rng.choice(c.contacts)
        await self._read(c, "session", contact.devices)
        await self._write(c, {"session": {a: self.values.session() for a in contact.devices}})

    async def _incoming(self, c: Company) -> None:
        contact = c.rng.choice(c.contacts)
        address = c.rng.choice(contact.devices)
        await self._read(c, "session", [address])
        data: dict[str, dict[str, Any]] = {"session": {address: self.values.session()}}
        pre_key = None
        if c.pre_key_ids and c.rng.random() < 0.3:  # pkmsg: a new session from a pre-key
            pre_key = c.rng.choice(c.pre_key_ids)
            await self._read(c, "pre-key", [str(pre_key)])
            await self._read(c, "identity-key", [address])
            data["pre-key"] = {str(pre_key): None}
            if c.rng.random() < 0.3:
                data["identity-key"] = {address: self.values.identity_key()}
        outcome = await self._write(c, data)
        if pre_key is not None and outcome != "fail":
            c.pre_key_ids.remove(pre_key)
        if len(c.pre_key_ids) <= TOP_UP_PRE_KEYS:
            first = c.next_pre_key_id
            top_up = self.values.pre_keys(first, TOP_UP_PRE_KEYS)
            if await self._write(c, {"pre-key": top_up}) != "fail":
                c.pre_key_ids.extend(range(first, first + TOP_UP_PRE_KEYS))
                c.next_pre_key_id = first + TOP_UP_PRE_KEYS

    async def _group_send(self, c: Company) -> None:
        group = c.rng.choice(c.groups)
        own = self._own_sender_key(c, group)
        await self._read(c, "sender-key-memory", [group.jid])
        await self._read(c, "sender-key", [own])
        await self._write(c, {"sender-key": {own: self.values.sender_key()},
                              "sender-key-memory": {
                                  group.jid: self.values.sender_key_memory(group.devices())}})

    async def _group_incoming(self, c: Company) -> None:
        group = c.rng.choice(c.groups)
        key_id = c.rng.choice(self._member_sender_keys(group))
        await self._read(c, "sender-key", [key_id])
        await self._write(c, {"sender-key": {key_id: self.values.sender_key()}})

    async def _creds_save(self, c: Company) -> None:
        self.values.touch_creds(c.state.creds)
        self._after(c, await self.driver.save_creds(c.process, c.id, c.state))

    async def _reconnect(self, c: Company) -> None:
        outcome, state = await self.driver.load(c.process, c.id)
        if outcome == "ok":
            c.state = state

    # -- hooks for nemeses -----------------------------------------------------------------------
    def bulk_write(self, count: int = FULL_PRE_KEYS, company: str | None = None) -> BulkWrite:
        """Start one upload of `count` new pre-keys on its own Jepsen process (reset-mid-write:
        the nemesis strikes while it is in flight). Ids continue the company's numbering."""
        c = self.companies[0] if company is None else next(
            x for x in self.companies if x.id == company)
        first = c.next_pre_key_id
        c.next_pre_key_id += count
        process = self.new_process()
        data = {"pre-key": self.values.pre_keys(first, count)}
        request = BulkWrite(company=c.id, count=count,
                            values={("pre-key", i): digest(v) for i, v in data["pre-key"].items()})

        async def run() -> None:
            try:
                request.outcome = await self.driver.set(
                    process, c.id, c.state, data, on_invoke=request.invoked.set)
            finally:
                request.invoked.set()
                request.done.set()

        task = asyncio.create_task(run(), name=f"chaos-bulk-{c.id}")
        self._bulk_tasks.add(task)
        task.add_done_callback(self._bulk_tasks.discard)
        return request

    def stats(self) -> dict[str, Any]:
        return {"companies": len(self.companies), "messages": dict(self.messages),
                "message_rate_hz": self.config.message_rate_hz,
                "setup_s": None if self.setup_s is None else round(self.setup_s, 3),
                **self.driver.stats.to_dict()}
