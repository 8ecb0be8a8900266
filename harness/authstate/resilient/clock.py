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

The offset, its margin and a floor for stamps are kept in `<cache_dir>/clock.json` (written
after every measurement and at close). A store that starts while PostgreSQL is down cannot
measure: it starts from the file instead of offset 0, and never stamps below the floor nor below
the stamps of the journal it found. Without that, a server clock ahead of ours made the
successor's journaled writes look older than its predecessor's last direct writes, and the
replay discarded them as "conflicts".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from harness.authstate.resilient.dirlock import fsync_dir

log = logging.getLogger("harness.authstate.resilient")

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

    def floor(self, at: float) -> None:
        """Never stamp at or below `at` (a stamp this store, or its predecessor, handed out)."""
        self.last = max(self.last, at)

    def state(self) -> dict[str, float]:
        """What `restore` needs after a restart: offset, margin and a floor (the latest stamp
        handed out, or now)."""
        return {"offset": self.offset, "margin": self.margin, "floor": self.now()}

    def restore(self, state: dict[str, Any]) -> None:
        """Start from a predecessor's state (until this process measures for itself)."""
        with contextlib.suppress(KeyError, TypeError, ValueError):
            offset, margin = float(state["offset"]), float(state["margin"])
            floor = float(state["floor"])
            if all(map(_finite, (offset, margin, floor))) and margin >= 0:
                self.offset, self.margin = offset, margin
                self.floor(floor)


def _finite(x: float) -> bool:
    return x == x and abs(x) != float("inf")


def load_state(path: Path) -> dict[str, Any] | None:
    """The state a predecessor saved, or None (no file, or not one we can read)."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("clock state %s unreadable (%s); ignored", path, exc)
        return None
    return data if isinstance(data, dict) else None


def save_state(path: Path, state: dict[str, float]) -> None:
    """Write the state durably (temp file, fsync, rename, directory fsync). Blocking."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            os.write(fd, json.dumps(state).encode())  # ~100 bytes: one write
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
