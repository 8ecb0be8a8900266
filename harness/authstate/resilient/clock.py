"""The server's clock as seen from here: acknowledgement times comparable with `now()`.

Replay decides "newer row wins" by comparing a journaled write's acknowledgement time with the
`updated_at` of the row: written by another instance, by the plain store (the server's `now()`),
or by our own direct writes (stamped from this clock when sent). Stamping with the local wall
clock would make that comparison wrong by the clock skew between this host and the server: a
server ahead by 2 s would make a write acknowledged 1 s before our journaled one look newer, and
replay would skip ours (a lost write). So the store measures the offset (server clock minus
local clock, from one round trip, error <= RTT/2) whenever it (re)connects, and stamps with
local time + offset + RTT/2: the *latest* the server's clock can read at that moment. So a
journaled write is never stamped earlier than a write whose `now()` the server took before we
acknowledged ours, our own direct writes take their stamps from the same clock, and replay can
never skip our own newer write as a "conflict". Stamps never go backwards, even if the local
clock is stepped back. Between measurements the offset drifts only as fast as the two clocks do
(NTP-disciplined: a few ppm).
"""

from __future__ import annotations

import time

import asyncpg

SERVER_TIME = "SELECT extract(epoch FROM clock_timestamp())::float8"


class ServerClock:
    __slots__ = ("last", "margin", "offset", "rtt")

    def __init__(self) -> None:
        self.offset = 0.0  # until measured: the local clock (same host or NTP assumed)
        self.margin = 0.0  # half the measuring round trip: the offset's uncertainty
        self.rtt: float | None = None
        self.last = 0.0

    async def measure(self, conn: asyncpg.Connection) -> None:
        t0 = time.time()
        server = await conn.fetchval(SERVER_TIME)
        t1 = time.time()
        self.offset = server - (t0 + t1) / 2
        self.rtt = t1 - t0
        self.margin = self.rtt / 2

    def now(self) -> float:
        """The latest the server's clock can read now (seconds since the epoch), never below
        a previous value."""
        t = time.time() + self.offset + self.margin
        if t <= self.last:
            t = self.last + 1e-6  # timestamptz has microsecond resolution
        self.last = t
        return t
