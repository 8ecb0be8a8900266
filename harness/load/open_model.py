"""The open model: messages arrive on a schedule, whatever the store's latency.

Locust's users are a closed model: a user waits for its answer before it sends again, so a
store that stalls for a second simply receives fewer requests during that second, and the
requests that would have arrived then are never measured ("coordinated omission", Locust #2347).
A real fleet of Baileys sockets does not slow down its incoming messages because the database
is slow.

Here `--rate R` gives a total arrival rate of R messages/s, split evenly over the companies:
company i's k-th message is *intended* to start at `t0 + offset_i + k * companies / R`. A company
still processes its messages one at a time (Baileys serialises a socket's events), so when it
falls behind it starts late and catches up back to back. Per operation we record:

- raw latency: the service time of the call;
- corrected latency: from the message's intended start to the call's end, i.e. raw + how late
  the message started + the time the message spent on its earlier calls (`call_corrected_us`):
  what a message arriving on schedule had waited by the time that answer came (wrk2's
  correction at message granularity). A message's third call waited for its first two.

Read raw for "how fast is the store when asked", corrected for "what users experience at this
arrival rate"; they differ only when the system cannot keep up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ArrivalSchedule:
    """The intended start times of one company's messages (seconds on any monotonic clock)."""

    start_s: float
    interval_s: float
    index: int = 0

    @classmethod
    def for_company(cls, t0_s: float, rate_per_s: float, companies: int, slot: int
                    ) -> ArrivalSchedule:
        """Company number `slot` of `companies` sharing `rate_per_s` messages/s: evenly
        interleaved so the total arrivals are uniform, not bunched at each interval's start."""
        if rate_per_s <= 0:
            raise ValueError(f"rate must be above 0 messages/s, got {rate_per_s}")
        interval = max(1, companies) / rate_per_s
        offset = (slot % max(1, companies)) / max(1, companies) * interval
        return cls(t0_s + offset, interval)

    def next_intended(self) -> float:
        """The intended start of the next message (and advance past it)."""
        intended = self.start_s + self.index * self.interval_s
        self.index += 1
        return intended


def lag_s(intended_s: float, actual_start_s: float) -> float:
    """How late a message started (0 when on time or early)."""
    return max(0.0, actual_start_s - intended_s)


def corrected_us(raw_us: float, lag: float) -> float:
    """Corrected latency: the service time plus the message's late start."""
    return raw_us + lag * 1e6


def call_corrected_us(raw_us: float, intended_s: float, call_start_s: float) -> float:
    """Corrected latency of one call of a message: its service time plus everything the
    message waited for before the call started (its late start and its earlier calls)."""
    return raw_us + max(0.0, call_start_s - intended_s) * 1e6


def message_latencies(calls: list[tuple[float, float]], intended_s: float | None
                      ) -> list[tuple[float, float | None]]:
    """(raw µs, corrected µs or None) of each call of one message, from (call start in
    seconds on the schedule's clock, raw µs) pairs; closed model (`intended_s` None): no
    corrected figure."""
    return [(raw, None if intended_s is None else call_corrected_us(raw, intended_s, start))
            for start, raw in calls]
