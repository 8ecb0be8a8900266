"""What a toxic sees of one stage of a link: its input, where its output goes, and its state.

A link (one connection, one direction) runs its active toxics as a pipeline of stages, like
Toxiproxy's ToxicStub chain. Each stage is one asyncio task running `toxic.pipe(stub)`.

The stub keeps the chunk the toxic is working on (`current`) so that when the chain changes
(a toxic is added, updated or removed) the link can cancel every stage at any `await` and hand
the unprocessed bytes, in order, to the new chain: nothing is lost, nothing is reordered.
Toxics must therefore only touch data through `take`/`forward`/`forward_part`/`drop`/`close`
and never catch `CancelledError`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

_clock = time.monotonic


class Chunk:
    """Bytes read from the source, with the monotonic time they entered the link."""

    __slots__ = ("data", "ts")

    def __init__(self, data: bytes, ts: float) -> None:
        self.data = data
        self.ts = ts

    def __repr__(self) -> str:
        return f"<Chunk {len(self.data)} B @{self.ts:.6f}>"


# An item in a stage queue: bytes, or None for "the stream ended here" (EOF / close).
Item = Chunk | None
TIMED_OUT = object()


class StageInput:
    """An unbounded FIFO with one consumer; cancelling `get` never loses an item."""

    __slots__ = ("_items", "_waiter")

    def __init__(self, items: list[Item] | None = None) -> None:
        self._items: deque[Item] = deque(items or ())
        self._waiter: asyncio.Future[Any] | None = None

    def put(self, item: Item) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def get(self, deadline: float | None = None) -> Item | object:
        """Next item; `TIMED_OUT` if `deadline` (monotonic seconds) passes first."""
        while not self._items:
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            timer = None
            if deadline is not None:
                delay = deadline - _clock()
                if delay <= 0:
                    self._waiter = None
                    return TIMED_OUT
                timer = loop.call_later(delay, _wake, waiter, TIMED_OUT)
            try:
                woke = await waiter
            finally:
                self._waiter = None
                if timer is not None:
                    timer.cancel()
            if woke is TIMED_OUT and not self._items:
                return TIMED_OUT
        return self._items.popleft()

    def drain(self) -> list[Item]:
        items = list(self._items)
        self._items.clear()
        return items

    def __len__(self) -> int:
        return len(self._items)


def _wake(waiter: asyncio.Future[Any], value: object) -> None:
    if not waiter.done():
        waiter.set_result(value)


class StageOwner(Protocol):
    """The link side of a stub: accounting and connection-level actions."""

    def dropped(self, nbytes: int) -> None: ...
    def toxic_closed(self, stub: Stub) -> None: ...
    def reset_connection(self, delay: float, stub: Stub) -> None: ...


class Stub:
    """One toxic's view of one stage: `take` the next chunk, then forward, split or drop it."""

    __slots__ = ("_emit", "_holding", "closed", "current", "input", "owner", "rng", "state",
                 "toxic_name")

    def __init__(self, *, toxic_name: str, owner: StageOwner, emit: Callable[[Item], None],
                 rng: random.Random, state: object = None,
                 items: list[Item] | None = None) -> None:
        self.toxic_name = toxic_name
        self.owner = owner
        self._emit = emit
        self.rng = rng
        self.state = state
        self.input = StageInput(items)
        self.current: Item = None
        self._holding = False
        self.closed = False

    # -- input -------------------------------------------------------------------------------
    async def take(self) -> Chunk | None:
        """The next chunk, or None when the stream ended; it stays `current` until handled."""
        item = await self.input.get()
        self.current, self._holding = item, True  # type: ignore[assignment]
        return item  # type: ignore[return-value]

    async def take_within(self, seconds: float) -> Chunk | object | None:
        """Like `take`, but returns `TIMED_OUT` if nothing arrives within `seconds`."""
        item = await self.input.get(_clock() + seconds)
        if item is TIMED_OUT:
            return TIMED_OUT
        self.current, self._holding = item, True  # type: ignore[assignment]
        return item

    def pending(self) -> list[Item]:
        """Everything this stage has not passed on yet, oldest first (used when re-chaining)."""
        head: list[Item] = [self.current] if self._holding else []
        return head + self.input.drain()

    # -- output ------------------------------------------------------------------------------
    def forward(self, chunk: Chunk) -> None:
        """Pass `chunk` (the current one) to the next stage."""
        if chunk is self.current:
            self.current, self._holding = None, False
        self._emit(chunk)

    def forward_part(self, nbytes: int) -> None:
        """Pass the first `nbytes` of the current chunk on; keep the rest as current."""
        chunk = self.current
        assert chunk is not None
        if nbytes >= len(chunk.data):
            self.forward(chunk)
            return
        head = Chunk(chunk.data[:nbytes], chunk.ts)
        chunk.data = chunk.data[nbytes:]
        self._emit(head)

    def drop(self) -> None:
        """Discard the current chunk (black holes, data past a limit)."""
        chunk = self.current
        if self._holding and chunk is not None:
            self.owner.dropped(len(chunk.data))
        self.current, self._holding = None, False

    def close(self) -> None:
        """End the stream after this stage: EOF passing through, or the toxic closing it."""
        passing_eof = self._holding and self.current is None
        if not passing_eof:
            self.drop()
        self.current, self._holding = None, False
        self.closed = True
        if not passing_eof:
            self.owner.toxic_closed(self)
        self._emit(None)

    # -- connection-level --------------------------------------------------------------------
    def reset_connection(self, delay: float) -> None:
        """Reset both sockets (TCP RST) after `delay` seconds; idempotent per connection."""
        self.owner.reset_connection(delay, self)

    # -- time --------------------------------------------------------------------------------
    @staticmethod
    def now() -> float:
        return _clock()

    @staticmethod
    async def sleep_until(deadline: float) -> None:
        """Sleep until the monotonic clock reaches `deadline` (never early: timers round)."""
        while True:
            delay = deadline - _clock()
            if delay <= 0:
                return
            await asyncio.sleep(delay)

    @staticmethod
    async def wait_forever() -> None:
        """Park the stage (e.g. bandwidth rate 0) until the chain changes or the link ends."""
        await asyncio.get_running_loop().create_future()
