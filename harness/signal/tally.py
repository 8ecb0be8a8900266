"""What happened to every message: the verdict per delivery, in libsignal's own words.

A *delivery* is one message for one recipient (a group message has one per member). Its
verdict: `decrypted` (first time, or after retries), `lost` (never decrypted: retries
exhausted, a retry receipt or resend that failed, never sent), or `pending` (still in flight
when counted). Each failed decrypt attempt is kept with its error label and the keys it
involved, so it can be joined with the checker's anomalies on the same (company, key).

Labels are libsignal's messages: "Bad MAC", "Key used already or never filled",
"No session record", "Invalid PreKey ID", "No SenderKeyRecord found for decryption" ...
libsignal reports a `msg` it cannot decrypt as "No matching sessions found for message" and
prints the reason per session; the label is that reason (the engine recomputes it on a copy),
the most recently used session first. An error thrown by the store itself is labelled
"store: <its exception name>".

Every change goes through a method of `Tally`, and each one can be written out as it happens
(`Tally(sink=...)`: one JSON-ready event per change, no key material). A process killed with
SIGKILL thereby leaves its tally behind, and `replay(events)` rebuilds it in another process
(client-crash: the parent counts what the killed child's conversations did up to the kill).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Sink = Callable[[dict[str, Any]], None]

NO_MATCHING = "No matching sessions found for message"


def label(error: dict[str, Any]) -> str:
    """The short name of a decrypt (or send) failure."""
    message = str(error.get("message") or "")
    if error.get("harness"):
        return f"harness: {error.get('name') or 'Error'}"
    if error.get("store"):
        return f"store: {error.get('name') or 'Error'}"
    if message == NO_MATCHING:
        causes = [c for c in error.get("causes") or () if c != "decrypts on a copy"]
        return str(causes[0]) if causes else "No matching sessions"
    if message.startswith("Received message with old counter"):
        return "Received message with old counter"
    if error.get("name") in ("TypeError", "RangeError"):
        return f"{error['name']}: {message[:80]}"
    return message[:100] or str(error.get("name") or "Error")


@dataclass
class Failure:
    """One failed decrypt attempt."""

    at_ns: int
    message: str  # message id
    sender: str
    recipient: str
    label: str
    error: dict[str, Any]
    keys: list[tuple[str, str, str]]  # (company, key type, key id) it involved
    store_failures: int = 0  # store calls that failed inside the attempt (Baileys may hide them)
    attempt: int = 1


@dataclass
class Delivery:
    message: Message
    recipient: str
    status: str = "pending"  # pending | decrypted | lost
    attempts: int = 0
    failures: list[Failure] = field(default_factory=list)
    retries: int = 0  # retry receipts the recipient sent
    lost_reason: str = ""
    decrypted_at_ns: int | None = None
    pre_key: int | None = None  # the pre-key id of the bundle the last session came from

    @property
    def first_error(self) -> str | None:
        return self.failures[0].label if self.failures else None


@dataclass
class Message:
    id: str
    conversation: str
    kind: str  # direct | group
    sender: str
    plaintext: bytes
    created_ns: int
    deliveries: dict[str, Delivery] = field(default_factory=dict)
    always_answer: bool = False  # the first message of a conversation gets an answer
    sent: bool = False
    send_failures: list[str] = field(default_factory=list)


class Tally:
    """Counts and timeline of a run (or of a new-pod check). `sink`, when given, receives
    every change as an event (`replay` turns the events back into a Tally)."""

    def __init__(self, sink: Sink | None = None) -> None:
        self.messages: dict[str, Message] = {}
        self.failures: list[Failure] = []
        self.retries = 0
        self.retry_failures: Counter[str] = Counter()
        self.reestablished: Counter[str] = Counter()  # reason -> count
        self.reestablished_pairs: Counter[tuple[str, str]] = Counter()
        self.send_failures: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.harness_errors: Counter[str] = Counter()  # ops the harness itself failed
        self.rekeys = 0
        self.events: list[tuple[int, str]] = []  # (time, "decrypted" | "failed" | "lost")
        self.sink = sink

    def _emit(self, event: dict[str, Any]) -> None:
        if self.sink is not None:
            self.sink(event)

    def new_message(self, message: Message, recipients: list[str]) -> Message:
        for recipient in recipients:
            message.deliveries[recipient] = Delivery(message, recipient)
        self.messages[message.id] = message
        self._emit({"e": "message", "id": message.id, "conv": message.conversation,
                    "kind": message.kind, "sender": message.sender, "to": list(recipients),
                    "t": message.created_ns, "text": message.plaintext.hex()})
        return message

    def sent(self, message: Message) -> None:
        """Every envelope of `message` went to the server."""
        message.sent = True
        self._emit({"e": "sent", "id": message.id})

    def send_failed(self, failed: str, message: Message | None = None) -> None:
        """A send (or a pre-key upload: no message) the store failed; it is tried again."""
        self.send_failures[failed] += 1
        if message is not None:
            message.send_failures.append(failed)
        self._emit({"e": "send_failed", "id": None if message is None else message.id,
                    "label": failed})

    def decrypted(self, delivery: Delivery, *, at_ns: int | None = None) -> None:
        delivery.status = "decrypted"
        delivery.decrypted_at_ns = time.monotonic_ns() if at_ns is None else at_ns
        self.events.append((delivery.decrypted_at_ns, "decrypted"))
        self._emit({"e": "decrypted", "id": delivery.message.id, "to": delivery.recipient,
                    "t": delivery.decrypted_at_ns})

    def failed(self, delivery: Delivery, failure: Failure) -> None:
        delivery.failures.append(failure)
        self.failures.append(failure)
        self.events.append((failure.at_ns, "failed"))
        self._emit({"e": "failed", "id": delivery.message.id, "to": delivery.recipient,
                    "t": failure.at_ns, "label": failure.label, "error": failure.error,
                    "keys": [list(k) for k in failure.keys],
                    "store_failures": failure.store_failures, "attempt": failure.attempt})

    def lost(self, delivery: Delivery, reason: str, *, at_ns: int | None = None) -> None:
        if delivery.status == "pending":
            delivery.status = "lost"
            delivery.lost_reason = reason
            at = time.monotonic_ns() if at_ns is None else at_ns
            self.events.append((at, "lost"))
            self._emit({"e": "lost", "id": delivery.message.id, "to": delivery.recipient,
                        "reason": reason, "t": at})

    def retried(self) -> None:
        """A retry receipt went out."""
        self.retries += 1
        self._emit({"e": "retry"})

    def retry_failed(self, failed: str) -> None:
        self.retry_failures[failed] += 1
        self._emit({"e": "retry_failed", "label": failed})

    def reestablish(self, owner: str, peer: str, reason: str) -> None:
        """A session injected where `owner` had one with `peer` already."""
        self.reestablished[reason] += 1
        self.reestablished_pairs[(owner, peer)] += 1
        self._emit({"e": "reestablished", "owner": owner, "peer": peer, "reason": reason})

    def duplicate(self, kind: str) -> None:
        self.duplicates[kind] += 1
        self._emit({"e": "duplicate", "kind": kind})

    def rekeyed(self) -> None:
        self.rekeys += 1
        self._emit({"e": "rekey"})

    def harness_error(self, text: str) -> None:
        self.harness_errors[text] += 1
        self._emit({"e": "harness_error", "text": text})

    def deliveries(self) -> list[Delivery]:
        return [d for m in self.messages.values() for d in m.deliveries.values()]

    def summary(self) -> dict[str, Any]:
        deliveries = self.deliveries()
        status = Counter(d.status for d in deliveries)
        undecryptable = Counter(d.first_error for d in deliveries if d.failures)
        return {
            "messages": len(self.messages),
            "deliveries": len(deliveries),
            "decrypted": status["decrypted"],
            "decrypted_after_retry": sum(1 for d in deliveries
                                         if d.status == "decrypted" and d.failures),
            "undecryptable": dict(undecryptable.most_common()),
            "undecryptable_total": sum(undecryptable.values()),
            "failed_attempts": dict(Counter(f.label for f in self.failures).most_common()),
            "retries": self.retries,
            "retry_failures": dict(self.retry_failures),
            "reestablished": sum(self.reestablished.values()),
            "reestablished_by": dict(self.reestablished),
            "lost": status["lost"],
            "lost_by": dict(Counter(d.lost_reason for d in deliveries
                                    if d.status == "lost").most_common()),
            "pending": status["pending"],
            "send_failures": dict(self.send_failures.most_common()),
            "duplicates": dict(self.duplicates),
            "rekeys": self.rekeys,
        }


def replay(events: Iterable[Mapping[str, Any]]) -> Tally:
    """The Tally whose changes these were (events of other kinds are skipped; a change naming
    a message the events never created raises KeyError: the stream is not a tally's)."""
    tally = Tally()
    for event in events:
        kind = event.get("e")
        if kind == "message":
            tally.new_message(Message(str(event["id"]), str(event["conv"]), str(event["kind"]),
                                      str(event["sender"]),
                                      bytes.fromhex(str(event.get("text") or "")),
                                      int(event["t"])),
                              [str(r) for r in event["to"]])
        elif kind == "sent":
            tally.sent(tally.messages[str(event["id"])])
        elif kind == "send_failed":
            message = tally.messages[str(event["id"])] if event.get("id") else None
            tally.send_failed(str(event["label"]), message)
        elif kind in ("decrypted", "failed", "lost"):
            delivery = tally.messages[str(event["id"])].deliveries[str(event["to"])]
            if kind == "decrypted":
                tally.decrypted(delivery, at_ns=int(event["t"]))
            elif kind == "lost":
                tally.lost(delivery, str(event["reason"]), at_ns=int(event["t"]))
            else:
                tally.failed(delivery, Failure(
                    int(event["t"]), delivery.message.id, delivery.message.sender,
                    delivery.recipient, str(event["label"]), dict(event["error"]),
                    [(str(c), str(t), str(i)) for c, t, i in event["keys"]],
                    int(event.get("store_failures") or 0), int(event.get("attempt") or 1)))
        elif kind == "retry":
            tally.retried()
        elif kind == "retry_failed":
            tally.retry_failed(str(event["label"]))
        elif kind == "reestablished":
            tally.reestablish(str(event["owner"]), str(event["peer"]), str(event["reason"]))
        elif kind == "duplicate":
            tally.duplicate(str(event["kind"]))
        elif kind == "rekey":
            tally.rekeyed()
        elif kind == "harness_error":
            tally.harness_error(str(event["text"]))
    return tally
