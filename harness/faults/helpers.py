"""Fault helpers: named outages on one proxy, as context managers that record when they acted.

    faults = Faults(client, "pg", timeline)
    with faults.sever():                 # or: async with faults.sever():
        ...                              # PostgreSQL is unreachable through the proxy here
    async with faults.latency(200, jitter=50):
        ...

Each fault is a list of API calls to inject it and a list to clear it, sent with the sync client
(`with`) or a short-lived async client (`async with`), so both work against our server and a
real Toxiproxy. Every injection becomes a `FaultWindow` in the timeline (see
`harness.metrics.fault_timeline` for exactly when windows open and close). A fault whose
injection fails is cleared best-effort and not recorded; it never stays half-applied.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import threading
from collections.abc import Sequence
from typing import Any, Literal, Self

from harness.faults.client import AsyncToxiproxyClient, ToxiproxyClient, calls
from harness.faults.client.errors import NotFoundError, ToxiproxyError
from harness.metrics.fault_timeline import FaultTimeline, FaultWindow, Instant

Stream = Literal["upstream", "downstream", "both"]
_counter = itertools.count(1)


def _streams(stream: Stream) -> tuple[str, ...]:
    if stream == "both":
        return ("upstream", "downstream")
    if stream not in ("upstream", "downstream"):
        raise ValueError(f"stream must be upstream, downstream or both, not {stream!r}")
    return (stream,)


class Fault:
    """One fault on one proxy. Use `with`/`async with`, or `inject()`/`clear()` yourself."""

    def __init__(self, faults: Faults, kind: str, params: dict[str, Any],
                 inject: Sequence[calls.Call[Any]], clear: Sequence[calls.Call[Any]]) -> None:
        self.faults = faults
        self.kind = kind
        self.params = params
        self._inject = list(inject)
        self._clear = list(clear)
        self.window: FaultWindow | None = None
        self._aclient: AsyncToxiproxyClient | None = None

    @property
    def active(self) -> bool:
        return self.window is not None and self.window.active

    def _open(self) -> Instant:
        if self.active:
            raise RuntimeError(f"{self.kind} fault on {self.faults.proxy} is already injected")
        return Instant.now()

    def _record(self, started: Instant) -> FaultWindow:
        self.window = self.faults.timeline.open(self.kind, self.faults.proxy, self.params,
                                                at=started)
        return self.window

    # -- sync ----------------------------------------------------------------------------------
    def inject(self) -> FaultWindow:
        started = self._open()
        try:
            for call in self._inject:
                self.faults.client.send(call)
        except BaseException:
            self._clear_quietly_sync()
            raise
        return self._record(started)

    def clear(self) -> None:
        if not self.active:
            return
        try:
            for call in self._clear:
                _tolerate_gone(lambda c=call: self.faults.client.send(c))
        finally:
            self.faults.timeline.close(self.window)  # type: ignore[arg-type]

    def _clear_quietly_sync(self) -> None:
        for call in self._clear:
            with contextlib.suppress(ToxiproxyError):
                self.faults.client.send(call)

    def __enter__(self) -> Self:
        self.inject()
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()

    # -- async ---------------------------------------------------------------------------------
    async def ainject(self) -> FaultWindow:
        started = self._open()
        self._aclient = self.faults.async_client()
        try:
            for call in self._inject:
                await self._aclient.send(call)
        except BaseException:
            for call in self._clear:
                with contextlib.suppress(ToxiproxyError):
                    await self._aclient.send(call)
            await self._close_aclient()
            raise
        return self._record(started)

    async def aclear(self) -> None:
        if not self.active:
            await self._close_aclient()
            return
        client = self._aclient or self.faults.async_client()
        self._aclient = client
        try:
            for call in self._clear:
                try:
                    await client.send(call)
                except NotFoundError:
                    pass  # already gone (proxy deleted, toxic removed by a reset)
        finally:
            self.faults.timeline.close(self.window)  # type: ignore[arg-type]
            await self._close_aclient()

    async def _close_aclient(self) -> None:
        client, self._aclient = self._aclient, None
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> Self:
        await self.ainject()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclear()

    def __repr__(self) -> str:
        state = "active" if self.active else "idle"
        return f"<Fault {self.kind} on {self.faults.proxy} {self.params} {state}>"


def _tolerate_gone(send: Any) -> None:
    try:
        send()
    except NotFoundError:
        pass  # already gone (proxy deleted, toxic removed by a reset)


class Flap:
    """Down for `period * down_fraction` seconds, then up for the rest of the period, `times`
    times. Each down phase is its own `flap` window (with its cycle number): recovery is
    measured from each return.

    `with`/`async with` flap in the background while the block runs; leaving the block stops
    flapping and leaves the proxy enabled. `run()`/`arun()` flap in the foreground.
    """

    def __init__(self, faults: Faults, period: float, times: int,
                 down_fraction: float = 0.5) -> None:
        if period <= 0 or times < 1 or not 0 < down_fraction < 1:
            raise ValueError("flap needs period > 0, times >= 1 and 0 < down_fraction < 1")
        self.faults = faults
        self.period, self.times, self.down_fraction = period, times, down_fraction
        self.params = {"period": period, "times": times, "down_fraction": down_fraction}
        self.cycles: list[FaultWindow] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._task: asyncio.Task[list[FaultWindow]] | None = None

    def _down(self, cycle: int) -> Fault:
        return self.faults.sever_as("flap", {**self.params, "cycle": cycle})

    # -- foreground ----------------------------------------------------------------------------
    def run(self) -> list[FaultWindow]:
        for cycle in range(1, self.times + 1):
            if self._stop.is_set():
                break
            down = self._down(cycle)
            self.cycles.append(down.inject())
            try:
                self._stop.wait(self.period * self.down_fraction)
            finally:
                down.clear()
            if cycle < self.times:
                self._stop.wait(self.period * (1 - self.down_fraction))
        return self.cycles

    async def arun(self) -> list[FaultWindow]:
        for cycle in range(1, self.times + 1):
            down = self._down(cycle)
            self.cycles.append(await down.ainject())
            try:
                await asyncio.sleep(self.period * self.down_fraction)
            finally:
                await asyncio.shield(down.aclear())
            if cycle < self.times:
                await asyncio.sleep(self.period * (1 - self.down_fraction))
        return self.cycles

    # -- background (sync) ---------------------------------------------------------------------
    def _run_in_thread(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # re-raised by stop()
            self._error = exc

    def start(self) -> Self:
        if self._thread is not None or self._task is not None:
            raise RuntimeError("this flap is already running")
        self._thread = threading.Thread(target=self._run_in_thread, name="flap", daemon=True)
        self._thread.start()
        return self

    def wait(self, timeout: float | None = None) -> None:
        """Block until the background flap finished its cycles."""
        if self._thread is not None:
            self._thread.join(timeout)

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- background (async) --------------------------------------------------------------------
    async def astart(self) -> Self:
        if self._thread is not None or self._task is not None:
            raise RuntimeError("this flap is already running")
        self._task = asyncio.get_running_loop().create_task(self.arun())
        return self

    async def await_done(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def astop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(self, *exc: object) -> None:
        await self.astop()


class Faults:
    """The fault helpers bound to one proxy, recording into one timeline."""

    def __init__(self, client: ToxiproxyClient, proxy: str,
                 timeline: FaultTimeline | None = None, *, timeout: float = 10.0) -> None:
        self.client = client
        self.proxy = proxy
        self.timeline = timeline if timeline is not None else FaultTimeline()
        self._timeout = timeout

    def async_client(self) -> AsyncToxiproxyClient:
        return AsyncToxiproxyClient(self.client.url, timeout=self._timeout)

    def _toxic_name(self, kind: str, stream: str) -> str:
        return f"ah-{kind}-{next(_counter)}{secrets.token_hex(2)}-{stream}"

    def _toxics(self, kind: str, type_: str, streams: tuple[str, ...],
                attributes: dict[str, Any], params: dict[str, Any]) -> Fault:
        names = [(self._toxic_name(kind, s), s) for s in streams]
        inject = [calls.add_toxic(self.proxy, type_, s, n, 1.0, attributes) for n, s in names]
        clear = [calls.remove_toxic(self.proxy, n) for n, _ in reversed(names)]
        return Fault(self, kind, {**params, "toxics": [n for n, _ in names]}, inject, clear)

    def sever(self) -> Fault:
        """Proxy disabled: new connections refused, live ones closed (PostgreSQL "gone")."""
        return self.sever_as("sever", {})

    def sever_as(self, kind: str, params: dict[str, Any]) -> Fault:
        return Fault(self, kind, params,
                     [calls.update_proxy(self.proxy, None, None, False)],
                     [calls.update_proxy(self.proxy, None, None, True)])

    def blackhole(self) -> Fault:
        """timeout 0 both ways: connections accept but nothing flows (a hung network).
        Clearing closes the stalled connections, as removing Toxiproxy's timeout toxic does."""
        return self._toxics("blackhole", "timeout", ("upstream", "downstream"), {"timeout": 0},
                            {})

    def latency(self, ms: int, jitter: int = 0, *, stream: Stream = "downstream") -> Fault:
        """Each chunk delayed ms ± jitter (downstream by default: every response is late)."""
        return self._toxics("latency", "latency", _streams(stream),
                            {"latency": int(ms), "jitter": int(jitter)},
                            {"latency_ms": ms, "jitter_ms": jitter, "stream": stream})

    def reset_peers(self, after_ms: int = 0, *, stream: Stream = "both") -> Fault:
        """TCP RST on every connection at its next byte (after `after_ms`), new ones too."""
        return self._toxics("reset_peers", "reset_peer", _streams(stream),
                            {"timeout": int(after_ms)}, {"after_ms": after_ms, "stream": stream})

    def bandwidth(self, kbps: int, *, stream: Stream = "both") -> Fault:
        """Throughput capped at `kbps` KB/s (1 KB = 1000 B); 0 stalls the stream."""
        return self._toxics("bandwidth", "bandwidth", _streams(stream), {"rate": int(kbps)},
                            {"kbps": kbps, "stream": stream})

    def limit_data(self, nbytes: int, *, stream: Stream = "downstream") -> Fault:
        """Connections closed once `nbytes` have passed (per connection and direction)."""
        return self._toxics("limit_data", "limit_data", _streams(stream), {"bytes": int(nbytes)},
                            {"bytes": nbytes, "stream": stream})

    def flap(self, period: float, times: int, *, down_fraction: float = 0.5) -> Flap:
        """Sever and restore `times` times, one `period` (seconds) per cycle."""
        return Flap(self, period, times, down_fraction)
