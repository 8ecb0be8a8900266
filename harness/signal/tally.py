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
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

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
    """Counts and timeline of a run (or of a new-pod check)."""

    def __init__(self) -> None:
        self.messages: dict[str, Message] = {}
        self.failures: list[Failure] = []
        self.retries = 0
        self.retry_failures: Counter[str] = Counter()
        self.reestablished: Counter[str] = Counter()  # reason -> count
        self.reestablished_pairs: Counter[tuple[str, str]] = Counter()
        self.send_failures: Counter[str] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.rekeys = 0
        self.events: list[tuple[int, str]] = []  # (time, "decrypted" | "failed" | "lost")

    def new_message(self, message: Message, recipients: list[str]) -> Message:
        for recipient in recipients:
            message.deliveries[recipient] = Delivery(message, recipient)
        self.messages[message.id] = message
        return message

    def decrypted(self, delivery: Delivery) -> None:
        delivery.status = "decrypted"
        delivery.decrypted_at_ns = time.monotonic_ns()
        self.events.append((delivery.decrypted_at_ns, "decrypted"))

    def failed(self, delivery: Delivery, failure: Failure) -> None:
        delivery.failures.append(failure)
        self.failures.append(failure)
        self.events.append((failure.at_ns, "failed"))

    def lost(self, delivery: Delivery, reason: str) -> None:
        if delivery.status == "pending":
            delivery.status = "lost"
            delivery.lost_reason = reason
            self.events.append((time.monotonic_ns(), "lost"))

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
