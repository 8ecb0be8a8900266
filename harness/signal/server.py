"""The stand-in for the WhatsApp server: pre-key bundles and message delivery.

- Bundles: each company publishes its identity, signed pre-key and uploaded one-time pre-keys
  (public halves only); a bundle fetch hands out one pre-key and forgets it, as the server does,
  or none once they ran out (a session then starts from the signed pre-key alone). A company
  whose pool ran low is told to upload more (Baileys' "pre-key low" notification).
- Delivery: ordered per sender and recipient (a channel: one device's offline queue keeps the
  stanzas of one sender in order, 1:1 and group alike), at least once. The channel's
  head goes to the recipient; the next one only once the recipient has settled it (Baileys acks
  every stanza, decrypted or not). On demand: a delay before each delivery, and duplicates (a
  stanza delivered again after its ack, as after a client that crashed before acking).
Nothing here is WhatsApp's protocol: a model of what it guarantees to the Signal layer.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Envelope:
    """One stanza: a message's ciphertext for one recipient."""

    delivery: Any  # tally.Delivery
    channel: tuple[str, str]  # (sender, recipient): the server keeps their stanzas in order
    payload: dict[str, Any]  # direct: {type, ciphertext}; group: {ciphertext, skdm?}
    duplicate: bool = False
    seq: int = 0  # set when posted (the workload numbers its envelopes)


@dataclass
class _Identity:
    bundle: dict[str, Any]
    pre_keys: deque[tuple[int, bytes]] = field(default_factory=deque)


class Server:
    def __init__(self, deliver: Callable[[Envelope], None], rng: random.Random, *,
                 delay_s: tuple[float, float] = (0.0, 0.0), duplicate_rate: float = 0.0,
                 low_pre_keys: int = 5) -> None:
        self._deliver = deliver
        self._rng = rng
        self.delay_s = delay_s
        self.duplicate_rate = duplicate_rate
        self.low_pre_keys = low_pre_keys
        self._identities: dict[str, _Identity] = {}
        self._channels: dict[tuple[str, str], deque[Envelope]] = {}
        self._busy: set[tuple[str, str]] = set()
        self._timers = 0
        self.counts: Counter[str] = Counter()

    # -- bundles ---------------------------------------------------------------------------------
    def publish(self, company: str, bundle: dict[str, Any],
                pre_keys: list[tuple[int, bytes]]) -> None:
        self._identities[company] = _Identity(dict(bundle), deque(map(tuple, pre_keys)))

    def upload(self, company: str, pre_keys: list[tuple[int, bytes]]) -> None:
        self._identities[company].pre_keys.extend(map(tuple, pre_keys))

    def fetch_bundle(self, company: str) -> dict[str, Any]:
        identity = self._identities[company]
        bundle = dict(identity.bundle)
        if identity.pre_keys:
            bundle["pre_key"] = list(identity.pre_keys.popleft())
        else:
            self.counts["bundles without pre-key"] += 1
        self.counts["bundles"] += 1
        return bundle

    def low(self, company: str) -> bool:
        return len(self._identities[company].pre_keys) <= self.low_pre_keys

    # -- delivery --------------------------------------------------------------------------------
    def post(self, envelope: Envelope) -> None:
        queue = self._channels.setdefault(envelope.channel, deque())
        queue.append(envelope)
        self.counts["posted"] += 1
        if envelope.channel not in self._busy:
            self._dispatch(envelope.channel)

    def settle(self, envelope: Envelope) -> None:
        """The recipient processed `envelope` (and acked it): the channel moves on."""
        if envelope.duplicate:
            return
        queue = self._channels.get(envelope.channel)
        if not queue or queue[0] is not envelope:
            return
        queue.popleft()
        self._busy.discard(envelope.channel)
        if self.duplicate_rate and self._rng.random() < self.duplicate_rate:
            self.counts["duplicates"] += 1
            self._later(lambda: self._deliver(Envelope(envelope.delivery, envelope.channel,
                                                       envelope.payload, duplicate=True)))
        if queue:
            self._dispatch(envelope.channel)
        else:
            del self._channels[envelope.channel]

    def _dispatch(self, channel: tuple[str, str]) -> None:
        self._busy.add(channel)
        head = self._channels[channel][0]
        self.counts["delivered"] += 1
        self._later(lambda: self._deliver(head))

    def _later(self, fn: Callable[[], None]) -> None:
        low, high = self.delay_s
        delay = self._rng.uniform(low, high) if high > 0 else 0.0
        if delay <= 0:
            fn()
            return
        self._timers += 1

        def fire() -> None:
            self._timers -= 1
            fn()

        asyncio.get_running_loop().call_later(delay, fire)

    @property
    def idle(self) -> bool:
        """No stanza waits in a channel and no delayed delivery is pending."""
        return not self._channels and not self._timers
