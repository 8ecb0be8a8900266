"""One direction of one proxied connection: a zero-cost fast path, or a chain of toxic stages.

Fast path (no active toxic): the source protocol's `data_received` calls the destination
transport's `write` directly; flow control is the transports' own (destination over its high
water mark -> pause reading the source). No task, no queue, no per-chunk Python work beyond
one byte counter.

Chain (one or more active toxics): `data_received` timestamps the chunk and queues it into the
first stage; each stage is an asyncio task running one toxic; the last stage writes to the
destination. Bytes inside the chain are bounded (`HIGH_WATER`): above it the source is paused.

Switching happens live, per direction, whenever the toxic chain changes. Every stage is
cancelled at whatever `await` it sits on; the bytes it had not passed on are moved, oldest
first, to the first stage of the new chain at or after the toxic they were waiting for
(never backwards, so no toxic applies twice), or written straight out when no toxic is left.
Nothing is lost or reordered. Toxicity is rolled per link whenever Toxiproxy (re)starts a toxic's
stub: for every toxic when the connection opens, for a toxic when it is added or updated, and for
the toxic just before it in the same direction when a toxic is added or removed (Toxiproxy's
link.go interrupts and re-runs that neighbouring stub). A re-roll keeps the toxic's state.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.faults.server.toxic_set import ChainChange, Direction, ToxicDef
from harness.faults.toxics.stub import Chunk, Item, Stub

if TYPE_CHECKING:
    from harness.faults.server.connection import Connection, Side

log = logging.getLogger("harness.faults.server")

HIGH_WATER = 1 << 20  # bytes inside a toxic chain before the source is paused
LOW_WATER = 256 << 10
PAUSE_DST = 1  # the destination's write buffer is full
PAUSE_CHAIN = 2  # the toxic chain holds too many bytes


class Stage:
    __slots__ = ("position", "stub", "task", "toxic")

    def __init__(self, toxic: ToxicDef, position: int, stub: Stub) -> None:
        self.toxic = toxic
        self.position = position  # index of the toxic in the direction's full chain
        self.stub = stub
        self.task: asyncio.Task[None] | None = None


class Link:
    def __init__(self, conn: Connection, direction: Direction, src: Side, dst: Side,
                 rng_for: Callable[..., random.Random]) -> None:
        self.conn = conn
        self.direction = direction
        self.src = src
        self.dst = dst
        self._rng_for = rng_for
        self._roll_rng = rng_for("toxicity")
        self.chain: list[ToxicDef] = []
        self.active: dict[str, bool] = {}
        self._states: dict[str, object] = {}
        self._toxic_rngs: dict[str, random.Random] = {}
        self.stages: list[Stage] = []
        self.pending = 0  # bytes inside the chain
        self.chain_in = 0
        self.chain_out = 0
        self.dropped_bytes = 0  # dropped by toxics (timeout, limit_data, reset_peer)
        self.discarded = 0  # read after the link could no longer deliver
        self.paused = 0
        self.finished = False  # the close was passed to the destination
        self.draining = False  # a toxic closed the stream; chain changes no longer apply
        self.dead = False  # the destination is gone or the connection was aborted

    # -- setup ---------------------------------------------------------------------------------
    def attach(self, chain: list[ToxicDef]) -> None:
        """Start with the proxy's current chain for this direction (all toxics rolled now)."""
        self.chain = list(chain)
        for toxic in self.chain:
            self._start_applying(toxic)
        positions = self._active_positions()
        if positions:
            self._build(positions, {}, 0)
            self.src.sink = self._enqueue
        else:
            self.src.sink = self.dst.transport.write  # type: ignore[union-attr]

    def _start_applying(self, toxic: ToxicDef, keep_state: bool = False) -> None:
        self.active[toxic.name] = self._roll_rng.random() < toxic.toxicity
        if not keep_state or toxic.name not in self._states:
            self._states[toxic.name] = toxic.toxic.new_state()

    def _active_positions(self) -> list[tuple[int, ToxicDef]]:
        return [(i, t) for i, t in enumerate(self.chain) if self.active.get(t.name)]

    def _toxic_rng(self, name: str) -> random.Random:
        rng = self._toxic_rngs.get(name)
        if rng is None:
            rng = self._toxic_rngs[name] = self._rng_for("toxic", name)
        return rng

    def _build(self, positions: list[tuple[int, ToxicDef]], buckets: dict[int, list[Item]],
               first_live: int) -> None:
        """Create stages (back to front, each emitting into the next) and start live ones."""
        stages: list[Stage] = []
        emit: Callable[[Item], None] = self._deliver
        for j in reversed(range(len(positions))):
            position, toxic = positions[j]
            stub = Stub(toxic_name=toxic.name, owner=self, emit=emit,
                        rng=self._toxic_rng(toxic.name), state=self._states.get(toxic.name),
                        items=buckets.get(j))
            stages.append(Stage(toxic, position, stub))
            emit = stub.input.put
        stages.reverse()
        loop = asyncio.get_running_loop()
        for stage in stages[first_live:]:
            stage.task = loop.create_task(self._run(stage))
        self.stages = stages

    async def _run(self, stage: Stage) -> None:
        try:
            await stage.toxic.toxic.pipe(stage.stub)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a toxic bug must not take the server down
            log.exception("toxic %s failed on %s", stage.toxic.name, self.conn.label)
            self.conn.abort(f"toxic {stage.toxic.name} failed: {exc!r}")

    # -- data path -----------------------------------------------------------------------------
    def _enqueue(self, data: bytes) -> None:
        size = len(data)
        self.chain_in += size
        self.pending += size
        self.stages[0].stub.input.put(Chunk(data, time.monotonic()))
        if self.pending > HIGH_WATER and not self.paused & PAUSE_CHAIN:
            self.pause_source(PAUSE_CHAIN)

    def _deliver(self, item: Item) -> None:
        if item is None:
            self._close_destination()
            return
        size = len(item.data)
        self.pending -= size
        if not self.dead:
            self.dst.transport.write(item.data)  # type: ignore[union-attr]
            self.chain_out += size
        if self.paused & PAUSE_CHAIN and self.pending < LOW_WATER:
            self.resume_source(PAUSE_CHAIN)

    def _discard(self, data: bytes) -> None:
        self.discarded += len(data)

    # -- StageOwner (called by stubs) ---------------------------------------------------------
    def dropped(self, nbytes: int) -> None:
        self.pending -= nbytes
        self.dropped_bytes += nbytes
        if self.paused & PAUSE_CHAIN and self.pending < LOW_WATER:
            self.resume_source(PAUSE_CHAIN)

    def toxic_closed(self, stub: Stub) -> None:
        """A toxic ended the stream (timeout expired, limit reached): the link drains and ends."""
        self.draining = True
        self.src.sink = self._discard
        self.conn.note_reason(f"toxic {stub.toxic_name} closed the connection")

    def reset_connection(self, delay: float, stub: Stub) -> None:
        self.conn.schedule_reset(delay, stub.toxic_name, self.dst)

    # -- chain changes -------------------------------------------------------------------------
    def rechain(self, chain: list[ToxicDef], change: ChainChange,
                removed: list[ToxicDef]) -> None:
        """Apply a change of this direction's chain to the live link (see module docstring)."""
        if self.dead or self.finished or self.draining:
            self.chain = list(chain)
            return
        old_stages = self.stages
        old_index = {t.name: i for i, t in enumerate(self.chain)}

        def target(name: str) -> int:
            """Chain position (new numbering) where bytes waiting for toxic `name` continue."""
            if change.kind == "reset":
                return len(chain)
            i = old_index[name]
            if change.kind == "remove" and i > change.index:
                return i - 1
            return i  # removed toxic: its successor now has its index

        removed_names = {t.name for t in removed}
        # Removing a toxic that closes on removal (timeout) ends the stream at its place, on
        # every link, whether or not it was rolled in here: Toxiproxy's Cleanup closes the stub
        # unconditionally. Bytes in stages up to that place (`cut`) were stalled behind it.
        closing = [t for t in removed if t.toxic.closes_on_removal]
        cut_name = max(closing, key=lambda t: old_index[t.name]).name if closing else None
        cut = None
        if cut_name is not None:
            cut = max((k for k, st in enumerate(old_stages)
                       if st.position <= old_index[cut_name]), default=-1)
        for name in removed_names:
            self.active.pop(name, None)
            self._states.pop(name, None)
            self._toxic_rngs.pop(name, None)
        self.chain = list(chain)
        if change.kind in ("add", "update"):
            toxic = next(t for t in chain if t.name == change.name)
            self._start_applying(toxic, keep_state=change.kind == "update")
        if change.kind == "add" or (change.kind == "remove" and cut_name is None):
            # Toxiproxy's AddToxic / RemoveToxic interrupt the stub just before the change and
            # Run it again, which rolls its toxicity anew (its state is kept).
            if change.index >= 1:
                self._start_applying(chain[change.index - 1], keep_state=True)
        positions = self._active_positions()

        def first_stage_at(position: int) -> int:
            for j, (pos, _toxic) in enumerate(positions):
                if pos >= position:
                    return j
            return len(positions)  # past the end: write straight to the destination

        buckets: dict[int, list[Item]] = {}
        for k in reversed(range(len(old_stages))):  # later stages hold older bytes
            stage = old_stages[k]
            if stage.task is not None:
                stage.task.cancel()
            items = stage.stub.pending()
            if cut is not None and k <= cut:  # stalled behind a black hole that is going away
                for item in items:
                    if item is not None:
                        self.dropped(len(item.data))
                continue
            buckets.setdefault(first_stage_at(target(stage.toxic.name)), []).extend(items)
        first_live = 0
        if cut_name is not None:
            first_live = first_stage_at(target(cut_name))
            buckets.setdefault(first_live, []).append(None)
            self.draining = True
            self.src.sink = self._discard
            self.conn.note_reason(f"toxic {cut_name} removed")
        self.stages = []
        for item in buckets.pop(len(positions), []):
            self._deliver(item)
        if self.finished or self.dead:
            return
        if not positions:
            self.src.sink = self.dst.transport.write  # type: ignore[union-attr]
            return
        self._build(positions, buckets, first_live)
        if not self.draining:
            self.src.sink = self._enqueue

    # -- ends ----------------------------------------------------------------------------------
    def source_ended(self) -> None:
        """The source sent EOF or went away: pass the close on after the bytes in flight."""
        if self.finished or self.dead or self.draining:
            return
        self.src.sink = self._discard
        if self.stages:
            self.stages[0].stub.input.put(None)
        else:
            self._close_destination()

    def _close_destination(self) -> None:
        if self.finished:
            return
        self.finished = True
        self.src.sink = self._discard
        self._cancel_stages()
        if not self.dst.lost and self.dst.transport is not None:
            self.dst.transport.close()  # flushes what is buffered, then FIN

    def abandon(self) -> None:
        """The destination is gone or the connection is being aborted: stop, drop the rest."""
        self.dead = True
        self.src.sink = self._discard
        self._cancel_stages()

    def _cancel_stages(self) -> None:
        for stage in self.stages:
            if stage.task is not None and not stage.task.done():
                stage.task.cancel()

    # -- flow control --------------------------------------------------------------------------
    def pause_source(self, reason: int) -> None:
        if not self.paused:
            transport = self.src.transport
            if transport is not None and not transport.is_closing():
                transport.pause_reading()
        self.paused |= reason

    def resume_source(self, reason: int) -> None:
        if not self.paused & reason:
            return
        self.paused &= ~reason
        if not self.paused:
            transport = self.src.transport
            if transport is not None and not transport.is_closing():
                transport.resume_reading()

    # -- reporting -----------------------------------------------------------------------------
    @property
    def sent(self) -> int:
        return self.src.received - self.chain_in - self.discarded + self.chain_out

    def stats(self) -> dict[str, Any]:
        return {"received": self.src.received, "sent": self.sent,
                "dropped": self.dropped_bytes + self.discarded, "in_flight": self.pending,
                "toxics": {name: self.active[name] for name in (t.name for t in self.chain)
                           if name in self.active},
                "mode": "chain" if self.stages and not self.finished else "direct"}
