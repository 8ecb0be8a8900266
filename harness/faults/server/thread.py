"""The fault proxy server in a background thread with its own event loop (in-process mode).

Cheap to start (no interpreter start-up) and handy for unit tests, but it shares our process's
GIL: while test code runs Python, the proxy waits, which inflates measured latencies. Use the
subprocess mode (provision.embedded) for anything measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Self

from harness.errors import ProvisioningError
from harness.faults.server.app import FaultProxyServer


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (about half the per-hop cost of asyncio's loop), else asyncio."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class EmbeddedServerThread:
    kind = "embedded-thread"

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, seed: int | None = None,
                 proxy_metrics: bool = False) -> None:
        self.host, self.port = host, port
        self.server = FaultProxyServer(seed=seed, proxy_metrics=proxy_metrics)
        self.url = ""
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 15.0) -> Self:
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ProvisioningError("the in-process fault proxy did not start in time",
                                    hint="use the subprocess mode (AUTHSTATE_TOXIPROXY=embedded)")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def _run(self) -> None:
        loop = self._loop = new_event_loop()
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start(); never lost silently
            self._error = self._error or exc
        finally:
            self._ready.set()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self.url = await self.server.start(self.host, self.port)
        except BaseException as exc:
            self._error = exc
            await self.server.close()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.close()

    def call(self, coro_fn, timeout: float = 30.0):  # type: ignore[no-untyped-def]
        """Run `coro_fn()` on the server's loop and return its result (tests, seeding)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro_fn(), self._loop).result(timeout)

    def stop(self, timeout: float = 15.0) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
