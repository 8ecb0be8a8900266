"""The "new pod" check: a fresh process with an empty cache, only PostgreSQL, continues every
conversation.

After a run (traffic stopped, everything in flight settled, the old target flushed and
closed), a new instance of the target is opened (a new cache directory; for a `node:` target a
new sidecar; for a Python target a new bridge sidecar) and a new engine loads every company
from the store: its creds must still be the paired identity, and in every 1:1 conversation
each side sends one message the other decrypts, in every group one member sends and every
other member decrypts, without a new session (no bundle fetched: a session the store lost is a
failure here, not a re-establishment). What a deploy or a crash-restart would meet.

The two steps, `open_companies` and `continue_conversations`, are also how client-crash's
successor (the new process on the killed one's cache_dir) carries the killed process's
conversations on (harness/chaos/crash_signal.py).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from harness.metrics.history import History
from harness.signal.engine import SignalEngine
from harness.signal.recorder import Processes
from harness.signal.tally import Failure, label
from harness.signal.topology import Conversation, Topology, involved_keys


@dataclass
class NewPodResult:
    conversations: int = 0
    continued: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    decrypt_failures: list[Failure] = field(default_factory=list)  # for the attribution
    companies_unpaired: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (self.error is None and not self.companies_unpaired
                and self.continued == self.conversations)

    def summary(self) -> dict[str, Any]:
        return {"ok": self.ok, "conversations": self.conversations, "continued": self.continued,
                "failed_by": dict(Counter(f["error"] for f in self.failures).most_common()),
                "failures": self.failures[:20], "companies_unpaired": self.companies_unpaired,
                "seconds": round(self.seconds, 2), "error": self.error}


class Locks:
    """One engine op at a time per company, as one Baileys socket runs them."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    def of(self, company: str) -> asyncio.Lock:
        return self._locks.setdefault(company, asyncio.Lock())


async def new_pod_check(target: Any, topology: Topology, history: History,
                        processes: Processes, *, op_timeout_s: float, commit_retries: int,
                        commit_delay_ms: int, concurrency: int = 16,
                        engine: SignalEngine | None = None) -> NewPodResult:
    """Run the check against `target`, a freshly opened instance (the caller closes it).
    `engine`: a bridged engine started beforehand (a fresh Node.js process that has served no
    store yet), bound to `target` here; None starts one."""
    started = time.monotonic()
    result = NewPodResult()
    engine = engine.bind(target) if engine is not None else await SignalEngine.start(
        target, history, processes, op_timeout_s=op_timeout_s, commit_retries=commit_retries,
        commit_delay_ms=commit_delay_ms)
    try:
        if await open_companies(engine, topology, result):
            await continue_conversations(engine, topology, result, Locks(), tag="new-pod",
                                         concurrency=concurrency)
    finally:
        await engine.close()
        result.seconds = time.monotonic() - started
    return result


async def open_companies(engine: SignalEngine, topology: Topology,
                         result: NewPodResult) -> bool:
    """Load every company through the engine's target; its creds must still be paired.
    False (and `result.error`) when a load failed."""
    for company, jid in topology.jids.items():
        try:
            opened = await engine.open(company, jid)
        except Exception as exc:
            result.error = f"loading {company} failed: {type(exc).__name__}: {exc}"[:300]
            return False
        if not opened.get("paired"):
            result.companies_unpaired.append(company)
    return True


async def continue_conversations(engine: SignalEngine, topology: Topology,
                                 result: NewPodResult, locks: Locks, *, tag: str,
                                 concurrency: int = 16) -> None:
    """In every conversation one message each way (1:1) or one group message, without a new
    session; counted in `result` (the companies are open)."""
    gate = asyncio.Semaphore(concurrency)
    conversations = [c for c in topology.conversations if len(c.members) >= 2]
    result.conversations += len(conversations)

    async def one(conv: Conversation) -> None:
        extra: list[dict[str, Any]] = []
        async with gate:
            failure = await _continue(engine, topology, conv, locks, extra, tag)
        if failure is None:
            result.continued += 1
            return
        for item in (failure, *extra):
            note(conv, item)

    def note(conv: Conversation, failure: dict[str, Any]) -> None:
        error = failure.pop("detail", None)
        pkmsg = bool(failure.pop("pkmsg", False))
        result.failures.append({"conversation": conv.id, "kind": conv.kind, **failure})
        if error is not None:
            result.decrypt_failures.append(Failure(
                time.monotonic_ns(), f"{tag}:{conv.id}", failure["peer"],
                failure["company"], failure["error"], error,
                involved_keys(topology, conv, failure["peer"], failure["company"],
                              pkmsg=pkmsg, stage=error.get("stage")),
                int(error.get("store_failures") or 0)))

    await asyncio.gather(*(one(conv) for conv in conversations))


async def locked(engine: SignalEngine, locks: Locks, name: str, company: str,
                 **payload: Any) -> dict[str, Any]:
    """One engine op for `company`, alone among its ops; an exception comes back as an error
    result marked `harness` (not a verdict on the store)."""
    async with locks.of(company):
        try:
            return await engine.op(name, company, **payload)
        except Exception as exc:
            return {"error": {"name": type(exc).__name__, "message": str(exc)[:200],
                              "harness": True}}


async def _one_way(engine: SignalEngine, locks: Locks, jids: dict[str, str], text: bytes,
                   sender: str, recipient: str) -> dict[str, Any] | None:
    sent = await locked(engine, locks, "send", sender, to=jids[recipient], plaintext=text,
                         bundle=None)
    if sent.get("need_bundle"):
        return {"company": sender, "step": "send", "peer": recipient,
                "error": "session missing (a new session would be needed)"}
    if "error" in sent:
        return {"company": sender, "step": "send", "peer": recipient,
                "error": label(sent["error"])}
    got = await locked(engine, locks, "receive", recipient, **{
        "from": jids[sender], "type": sent["type"], "ciphertext": sent["ciphertext"]})
    if got.get("plaintext") == text:
        return None
    error = {**(got.get("error") or {"message": "wrong plaintext"}),
             "store_failures": got.get("store_failures")}
    return {"company": recipient, "step": "decrypt", "peer": sender, "error": label(error),
            "detail": error, "pkmsg": sent["type"] == "pkmsg"}


async def _continue(engine: SignalEngine, topology: Topology, conv: Conversation,
                    locks: Locks, extra: list[dict[str, Any]],
                    tag: str) -> dict[str, Any] | None:
    """One message each way (1:1) or one group message; the first failure, or None (later
    failures of the same conversation go to `extra`)."""
    jids = topology.jids
    text = f"{tag}:{conv.id}".encode()
    if conv.kind == "direct":
        a, b = conv.members
        first: dict[str, Any] | None = None
        for sender, recipient in ((a, b), (b, a)):  # both ways, even after a failure
            failure = await _one_way(engine, locks, jids, text, sender, recipient)
            if failure is not None and first is None:
                first = failure
            elif failure is not None:
                extra.append(failure)
        return first
    sender, *others = conv.members
    sent = await locked(engine, locks, "group_send", sender, group=conv.jid,
                         members=[jids[m] for m in others], plaintext=text, bundles={},
                         only=None)
    if sent.get("need_bundles"):
        return {"company": sender, "step": "group send", "error":
                "session missing (a new session would be needed)",
                "peers": [p for p, _ in sent["need_bundles"]][:5]}
    if "error" in sent:
        return {"company": sender, "step": "group send", "error": label(sent["error"])}
    skdm = {jid: part for jid, part in sent["skdm"]}
    for member in others:
        got = await locked(engine, locks, "group_receive", member, group=conv.jid, **{
            "from": jids[sender], "ciphertext": sent["ciphertext"],
            "skdm": skdm.get(jids[member])})
        if got.get("plaintext") != text:
            error = {**(got.get("error") or {"message": "wrong plaintext"}),
                     "store_failures": got.get("store_failures")}
            part = skdm.get(jids[member]) or {}
            return {"company": member, "step": "group decrypt", "peer": sender,
                    "error": label(error), "detail": error, "pkmsg": part.get("type") == "pkmsg"}
    return None
