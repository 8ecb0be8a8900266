"""The asyncio bridge: run the (asyncio) store under Locust's (gevent) users.

One asyncio loop per Locust process, on a real OS thread (not a greenlet: a loop in a greenlet
shares the hub's thread and every store call would contend with Locust's own scheduling).
Greenlets submit coroutines with `asyncio.run_coroutine_threadsafe`; the completion is handed
back without blocking the gevent hub and without polling: the task's done-callback (on the
loop thread) queues it and calls `send()` on one gevent `async` watcher, libev's thread-safe
wake-up; the hub then switches to the waiting greenlet (a `gevent.hub.Waiter`) on its own
thread. One
watcher serves every call, so a burst of completions costs one wake-up.

Why not `future.result()`: under gevent's monkey-patching it waits on a gevent Condition, which
another OS thread cannot notify safely. Why not `loop.call_soon` from a greenlet: it does not wake
an idle loop (hangs). Why not `asyncio.run` per call: every greenlet shares one thread.

Pitfalls handled here: after `gevent.monkey.patch_all()` `threading.Thread` is a greenlet, so
the thread is started with the original `_thread.start_new_thread`; the loop is uvloop when
installed (libuv sockets: monkey-patched `socket` never enters the loop), else a selector loop
on the original epoll/select selector.

Only gevent is imported here (lazily), never locust: the bridge benchmark uses it without Locust.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def _original(module: str, name: str) -> Any:
    """`module.name` as it was before gevent's monkey-patching (as is, if not patched)."""
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent comes with locust
        return getattr(__import__(module), name)
    return monkey.get_original(module, name)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when available, else asyncio's selector loop on the unpatched selector."""
    try:
        import uvloop
    except ImportError:
        import selectors

        selector_cls = _original("selectors", "DefaultSelector")
        if not isinstance(selector_cls, type) or not issubclass(selector_cls,
                                                                 selectors.BaseSelector):
            selector_cls = selectors.DefaultSelector
        return asyncio.SelectorEventLoop(selector_cls())
    return uvloop.new_event_loop()


class BridgeClosed(RuntimeError):
    """A call submitted after `close()`."""


class AsyncioBridge:
    """A private asyncio loop on its own OS thread, callable from greenlets.

    `call(coro)` runs `coro` on the loop and returns its result (or raises its exception) to
    the calling greenlet, which yields to the hub meanwhile. Create it in the process that uses
    it (threads do not survive `fork`, e.g. Locust's `--processes`).
    """

    def __init__(self) -> None:
        from gevent import get_hub

        self.loop = new_event_loop()
        from gevent.hub import Waiter

        self._Waiter = Waiter  # gevent's lightest one-shot wait, switched to from the hub
        self._hub = get_hub()
        self._done: collections.deque[tuple[Any, tuple[bool, Any]]] = collections.deque()
        self._submitted: collections.deque[tuple[Coroutine[Any, Any, Any], Any]] = (
            collections.deque())
        self._wake_pending = False
        self._drain_pending = False
        self._watcher = self._hub.loop.async_()
        self._watcher.start(self._drain)
        self._closed = False
        lock = _original("_thread", "allocate_lock")()
        lock.acquire()
        self._ready = lock
        _original("_thread", "start_new_thread")(self._run, ())
        # Wait (briefly, really blocking: the loop thread starts in microseconds) until the
        # loop runs, so the first call cannot race its start.
        self._ready.acquire()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        from harness.load.real_threads import RealThreadExecutor, threads_are_patched

        if threads_are_patched():  # asyncio.to_thread must get real threads (real_threads.py)
            self.loop.set_default_executor(RealThreadExecutor(4))
        self.loop.call_soon(self._ready.release)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    # -- calls from greenlets ---------------------------------------------------------------------
    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop; the calling greenlet waits without blocking the hub."""
        if self._closed:
            coro.close()
            raise BridgeClosed("the asyncio bridge is closed")
        waiter = self._Waiter(self._hub)
        self._submitted.append((coro, waiter))
        if not self._wake_pending:  # one loop wake-up for a burst of submissions
            self._wake_pending = True
            self.loop.call_soon_threadsafe(self._start_submitted)
        ok, value = waiter.get()
        if ok:
            return value
        raise value

    def _start_submitted(self) -> None:
        # On the loop thread: start every coroutine submitted since the last wake-up.
        self._wake_pending = False
        while self._submitted:
            coro, waiter = self._submitted.popleft()
            task = self.loop.create_task(coro)
            task.add_done_callback(lambda t, w=waiter: self._notify(w, t))

    def _notify(self, waiter: Any, task: asyncio.Task[Any]) -> None:
        # On the loop thread: queue the outcome and wake the hub (thread-safe libev call;
        # libev coalesces sends until the hub runs the watcher).
        if task.cancelled():
            outcome: tuple[bool, Any] = (False, asyncio.CancelledError())
        elif task.exception() is not None:
            outcome = (False, task.exception())
        else:
            outcome = (True, task.result())
        self._done.append((waiter, outcome))
        if not self._drain_pending:  # the hub is not yet due to drain: wake it, once
            self._drain_pending = True
            self._watcher.send()

    def _drain(self) -> None:
        # On the hub: resolve every queued completion (one wake-up may cover many).
        self._drain_pending = False
        while self._done:
            waiter, outcome = self._done.popleft()
            waiter.switch(outcome)

    # -- calls from the loop's own side (e.g. plain threads, tests) -----------------------------
    def call_blocking(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` and block the calling OS thread (not for greenlets: use `call`)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the loop after the tasks still running on it end (at most `timeout`)."""
        if self._closed:
            return
        self._closed = True

        async def _cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if tasks:
                _, pending = await asyncio.wait(tasks, timeout=timeout)
                for task in pending:
                    task.cancel()

        try:
            future = asyncio.run_coroutine_threadsafe(_cancel_rest(), self.loop)
            future.add_done_callback(lambda _f: self.loop.call_soon_threadsafe(self.loop.stop))
        except RuntimeError:  # loop already stopped
            pass
        self._watcher.stop()
        self._watcher.close()
