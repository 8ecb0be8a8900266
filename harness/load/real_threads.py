"""Real OS threads for the store's executors inside a gevent-patched (Locust) process.

After `gevent.monkey.patch_all()` (what `import locust` does) a `ThreadPoolExecutor` starts
*greenlets*, scheduled by the hub of the thread that submitted the work. Submitted from the
bridge's asyncio thread -- whose hub never runs -- they never run: `asyncio.to_thread` and a
store's own executor (the resilient store's journal writes, its directory lock) hang for ever.

`install()` swaps `concurrent.futures.ThreadPoolExecutor` (and every already-imported module's
reference to it) for `RealThreadExecutor`: workers started with the unpatched
`_thread.start_new_thread`, fed by the unpatched `SimpleQueue`, completing futures whose
condition is a real lock. The asyncio loop's default executor is set to one as well (the
bridge does it). Nothing changes in an unpatched process.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.thread
import sys
import threading
from collections.abc import Callable
from typing import Any


def _original(module: str, name: str) -> Any:
    from gevent import monkey

    return monkey.get_original(module, name)


def threads_are_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("threading"))


class _RealFuture(concurrent.futures.Future):  # type: ignore[type-arg]
    """A Future whose condition is a real lock (callbacks only: `result()` is never waited on
    from a greenlet; asyncio wraps it with done-callbacks)."""

    def __init__(self) -> None:
        super().__init__()
        self._condition = threading.Condition(_original("_thread", "allocate_lock")())


class RealThreadExecutor(concurrent.futures.Executor):
    """A minimal ThreadPoolExecutor on real OS threads (started lazily, up to max_workers)."""

    def __init__(self, max_workers: int | None = None, thread_name_prefix: str = "",
                 initializer: Callable[..., Any] | None = None,
                 initargs: tuple[Any, ...] = ()) -> None:
        self._max = max_workers or 4
        self._queue = _original("queue", "SimpleQueue")()
        self._start = _original("_thread", "start_new_thread")
        self._lock = _original("_thread", "allocate_lock")()
        self._workers = 0
        self._idle = 0
        self._shutdown = False
        self._initializer, self._initargs = initializer, initargs

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            future = _RealFuture()
            self._queue.put((future, fn, args, kwargs))
            if self._idle == 0 and self._workers < self._max:
                self._workers += 1
                self._start(self._work, ())
            return future

    def _work(self) -> None:
        if self._initializer is not None:
            self._initializer(*self._initargs)
        while True:
            with self._lock:
                self._idle += 1
            item = self._queue.get()
            with self._lock:
                self._idle -= 1
            if item is None:
                return
            future, fn, args, kwargs = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            workers = self._workers
        for _ in range(workers):
            self._queue.put(None)  # workers finish queued work first (FIFO), then stop


def install() -> bool:
    """Swap in RealThreadExecutor when threads are monkey-patched; True if it did."""
    if not threads_are_patched():
        return False
    original = concurrent.futures.thread.ThreadPoolExecutor
    concurrent.futures.ThreadPoolExecutor = RealThreadExecutor  # type: ignore[misc]
    concurrent.futures.thread.ThreadPoolExecutor = RealThreadExecutor  # type: ignore[misc]
    for module in list(sys.modules.values()):  # `from concurrent.futures import ...` copies
        if getattr(module, "ThreadPoolExecutor", None) is original:
            try:
                module.ThreadPoolExecutor = RealThreadExecutor  # type: ignore[union-attr]
            except (AttributeError, TypeError):
                pass
    return True
