"""One Node.js process serving one opened target, spoken to in JSON lines (PROTOCOL.md).

Real OS threads carry the bytes, not the caller's event loop: a target may be opened in one
loop and used from another (the property suites drive the store from their own loop), a module
stuck in synchronous code must not block the caller's loop on a full pipe, and under gevent (the
load suite's Locust processes) nothing here may touch a patched primitive (native.py). A writer
thread feeds stdin, a reader thread hands each reply to the asyncio future of the call that
waits for it (`call_soon_threadsafe` on that call's own loop), a third keeps the last lines of
the module's stdout/stderr for error messages.

Lifetime: the process runs in its own process group; `aclose()` asks the module to close, then
closes stdin, then terminates the group; a finalizer (also run at interpreter exit) kills a
sidecar nobody closed; and the sidecar exits by itself when its stdin ends, so even a SIGKILLed
harness leaves no Node process behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import re
import signal
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from harness.authstate import codec
from harness.node_target import native
from harness.node_target.errors import (
    NodeCallTimeout,
    NodeProtocolError,
    NodeSidecarCrashed,
    NodeStoreCrashed,
    NodeStoreSetupFailed,
    module_error,
)

log = logging.getLogger("harness.node_target")
T = TypeVar("T")
CallHandler = Callable[[str, Mapping[str, Any]], Awaitable[Any]]

SIDECAR_JS = Path(__file__).with_name("sidecar.mjs")
START_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 15.0  # the sidecar bounds the module's close() at 10 s
OUTPUT_TAIL_LINES = 40
SHOWN_TAIL_LINES = 15
_ERROR_LINE = re.compile(r"^\s*(?:[A-Z]\w*)?Error\b.*:|^Uncaught\b")
WRITES = frozenset({"set", "save", "clear", "delete"})


def _wait(proc: native.NativeProcess, timeout_s: float) -> int | None:
    """The exit code within `timeout_s`, else None (polls: Popen.wait may be gevent's)."""
    deadline = time.monotonic() + timeout_s
    while (code := proc.poll()) is None and time.monotonic() < deadline:
        native.sleep(0.01)
    return code


def _kill_group(proc: native.NativeProcess, grace_s: float = 2.0) -> None:
    """SIGTERM the sidecar's process group, SIGKILL it if it lingers; reap the process."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        if _wait(proc, grace_s) is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            _wait(proc, 5.0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything the module spawned into the group


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    """On the future's loop: settle it unless the caller stopped waiting."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class _Waiter:
    """An asyncio future of some loop, settled from any thread."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.future: asyncio.Future[Any] = self.loop.create_future()

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(_resolve, self.future, result, error)


async def in_native_thread(fn: Callable[[], T]) -> T:
    """Run blocking `fn` on a real OS thread (asyncio.to_thread's executor may be gevent's)."""
    waiter = _Waiter()

    def run() -> None:
        try:
            waiter.settle(fn())
        except BaseException as exc:
            waiter.settle(error=exc)

    native.NativeThread(run, "node-sidecar-blocking").start()
    return await waiter.future


class Sidecar:
    """A started sidecar; `await Sidecar.start(...)` returns once the module is imported and its
    export found."""

    def __init__(self, proc: native.NativeProcess, replies: Any, *, label: str,
                 call_timeout_s: float, secrets: tuple[str, ...] = ()) -> None:
        self.proc = proc
        self.label = label
        self.call_timeout_s = call_timeout_s
        self.info: dict[str, Any] = {}
        self._replies = replies
        self._secrets = tuple(s for s in secrets if s)
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[_Waiter, str, str | None]] = {}
        self._lock = native.allocate_lock()
        # put() is reentrant: a state's GC finalizer (release) may run inside a put
        self._outbox: Any = native.SimpleQueue()
        self._tail: collections.deque[str] = collections.deque(maxlen=OUTPUT_TAIL_LINES)
        self._first_error: str | None = None  # the module output's first error line
        self._ready: _Waiter | None = None
        self._dead: NodeSidecarCrashed | None = None  # set once no call can succeed any more
        self._crash: NodeSidecarCrashed | None = None  # set if that was not our doing
        self._closing = False
        self._started = False  # the module was imported and its export found
        self._serving: tuple[asyncio.AbstractEventLoop, CallHandler] | None = None
        self._serving_tasks: set[asyncio.Task[None]] = set()
        self._finalizer = weakref.finalize(self, _kill_group, proc)
        self._threads = [native.NativeThread(fn, f"node-sidecar-{name}")
                         for name, fn in (("writer", self._write_loop),
                                          ("reader", self._read_loop),
                                          ("output", self._output_loop))]

    # -- start -----------------------------------------------------------------------------------
    @classmethod
    async def start(cls, module: Path, export: str, *, env: dict[str, str], cwd: Path,
                    label: str, call_timeout_s: float, secrets: tuple[str, ...] = (),
                    node: str = "node") -> Sidecar:
        """Start node on `module`, wait for its `ready` line; NodeSidecarCrashed if it does not
        come (the module failed to import, the export is missing, node died)."""
        proc = native.NativeProcess(
            [node, str(SIDECAR_JS), str(module), export, str(native.NativeProcess.REPLY_FD),
             str(cwd)], env=env)
        sidecar = cls(proc, proc.replies, label=label, call_timeout_s=call_timeout_s,
                      secrets=secrets)
        sidecar._ready = _Waiter()
        for thread in sidecar._threads:
            thread.start()
        try:
            sidecar.info = await asyncio.wait_for(sidecar._ready.future, START_TIMEOUT_S)
        except TimeoutError:
            sidecar.kill()
            raise NodeStoreSetupFailed(
                f"{label}: the Node sidecar did not get ready within {START_TIMEOUT_S:.0f} s "
                f"(the module's import hangs?){sidecar._tail_text()}",
                hint="import the module with node yourself to see where it hangs") from None
        except BaseException:
            sidecar.kill()
            raise
        return sidecar

    # -- calls -----------------------------------------------------------------------------------
    async def call(self, op: str, *, company_id: str | None = None,
                   timeout_s: float | None = None, **payload: Any) -> Any:
        """Send a request, await its reply. Module errors raise NodeStoreError; no reply within
        the deadline raises NodeCallTimeout (outcome unknown for writes); a dead sidecar raises
        NodeSidecarCrashed."""
        write = op in WRITES
        line = codec.dumps({"op": op, **payload}).encode("utf-8")  # refuses unstorable values
        waiter = _Waiter()
        with self._lock:
            if self._dead is not None:
                raise self._dead
            request_id = next(self._ids)
            self._pending[request_id] = (waiter, op, company_id)
        self._outbox.put(b'{"id":%d,' % request_id + line[1:] + b"\n")
        bound = self.call_timeout_s if timeout_s is None else timeout_s
        started = time.monotonic()
        try:
            return await asyncio.wait_for(waiter.future, bound)
        except TimeoutError:
            raise NodeCallTimeout(
                f"{self.label}: {_describe_op(op)} did not answer within {bound:g} s"
                + (" (it may still complete)" if write else ""),
                hint="the module's call hangs (no database timeout set?); the bridge stopped "
                     "waiting, set AUTHSTATE_NODE_CALL_TIMEOUT_S to change the deadline",
                operation=_describe_op(op), company_id=company_id,
                outcome="unknown" if write else "failed",
                waited_s=time.monotonic() - started) from None
        finally:
            with self._lock:
                self._pending.pop(request_id, None)

    def serve(self, handler: CallHandler) -> None:
        """Answer the module's calls to the harness (callback.mjs `callHarness(op, payload)`):
        `await handler(op, message)` on the calling loop, its result (or error) sent back.
        Without a handler every call is answered with an error."""
        self._serving = (asyncio.get_running_loop(), handler)

    def notify(self, op: str, **payload: Any) -> None:
        """A request without reply (release a state handle); dropped if the sidecar is gone."""
        if self._dead is None and not self._closing:
            self._outbox.put(codec.dumps({"op": op, **payload}).encode("utf-8") + b"\n")

    @property
    def crash(self) -> NodeSidecarCrashed | None:
        """Why the sidecar died, if it died unexpectedly (None while alive or once closed)."""
        return self._crash

    @property
    def alive(self) -> bool:
        return self._dead is None and self.proc.poll() is None

    # -- shutdown --------------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Ask the module to close (its `close()` export), then stop the process."""
        if self._closing:
            return
        error: BaseException | None = None
        if self.alive:
            try:
                await self.call("close", timeout_s=CLOSE_TIMEOUT_S)
            except NodeSidecarCrashed:
                pass  # nothing left to close
            except Exception as exc:  # report after the process is gone
                error = exc
        self._closing = True
        await in_native_thread(self._stop)
        if error is not None:
            raise error

    def kill(self) -> None:
        self._closing = True
        self._stop(grace_s=0.0)

    def _stop(self, grace_s: float = 5.0) -> None:
        self._closing = True
        self._outbox.put(None)  # the writer closes stdin: the sidecar's cue to exit
        _wait(self.proc, grace_s)
        self._finalizer()  # kills the group if still there; runs once
        for thread in self._threads:
            thread.join(5)
        with contextlib.suppress(OSError):
            self._replies.close()
        self._fail_all(NodeSidecarCrashed(f"{self.label}: the sidecar was closed"))

    # -- threads ---------------------------------------------------------------------------------
    def _write_loop(self) -> None:
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            while (chunk := self._outbox.get()) is not None:
                stdin.write(chunk)
                if self._outbox.empty():
                    stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass  # the reader reports the death
        finally:
            with contextlib.suppress(OSError, ValueError):
                stdin.close()

    def _read_loop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            for raw in self._replies:
                self._on_line(raw)
        self._on_exit()

    def _on_line(self, raw: bytes) -> None:
        try:
            message = codec.unwrap_plain(codec.loads(raw))
        except Exception as exc:
            # Replies are written by sidecar.mjs, never by the module (its output has a pipe of
            # its own): a line we cannot read is the bridge broken, a failure of the harness.
            # Every waiting and later call says so at once, rather than time out as a "hang".
            log.error("%s: unreadable reply line (%s)", self.label, exc)
            self._fail_all(NodeProtocolError(
                f"{self.label}: the Node sidecar sent a reply line the harness cannot read "
                f"({type(exc).__name__}: {str(exc)[:200]})",
                hint="a bug in the harness's Node bridge (harness/node_target): please report "
                     "it with the module that triggered it"))
            return
        if "event" in message:
            self._on_event(message)
            return
        if "call" in message:
            self._on_call(message)
            return
        with self._lock:
            entry = self._pending.pop(message.get("id"), None)
        if entry is None:
            return  # the caller gave up (deadline) or never waited (release)
        waiter, op, company_id = entry
        if "error" in message:
            waiter.settle(error=module_error(message["error"], operation=_describe_op(op),
                                             company_id=company_id, write=op in WRITES))
        else:
            waiter.settle(message.get("ok"))

    def _on_call(self, message: dict[str, Any]) -> None:
        """A call from the module (reader thread): answered by the handler on its loop."""
        serving = self._serving
        if serving is None:
            self._answer(message.get("call"), error=RuntimeError(
                "the harness serves no calls for this sidecar"))
            return
        loop, handler = serving

        def spawn() -> None:
            task = loop.create_task(self._serve_call(handler, message))
            self._serving_tasks.add(task)
            task.add_done_callback(self._serving_tasks.discard)

        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody serves any more
            loop.call_soon_threadsafe(spawn)

    async def _serve_call(self, handler: CallHandler, message: dict[str, Any]) -> None:
        try:
            result = await handler(str(message.get("op")), message)
        except Exception as exc:
            self._answer(message.get("call"), error=exc)
        else:
            self._answer(message.get("call"), result)

    def _answer(self, call: Any, result: Any = None, error: BaseException | None = None) -> None:
        if self._dead is not None or self._closing:
            return
        if error is None:
            try:
                line = codec.dumps({"reply": call, "ok": result})
            except Exception as exc:  # a value JSON cannot carry: say so instead
                error = exc
        if error is not None:
            described = {"name": type(error).__name__, "message": str(error)[:600]}
            outcome = getattr(error, "outcome", None)
            if outcome in ("failed", "unknown"):
                described["outcome"] = outcome
            line = codec.dumps({"reply": call, "error": described})
        self._outbox.put(line.encode("utf-8") + b"\n")

    def _output_loop(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for raw in stdout:
                line = self._scrub(raw.decode("utf-8", "replace").rstrip("\n"))
                self._tail.append(line)
                if self._first_error is None and _ERROR_LINE.match(line):
                    self._first_error = line.strip()[:300]
                if log.isEnabledFor(logging.DEBUG):
                    log.debug("%s: %s", self.label, line)

    def _on_event(self, message: dict[str, Any]) -> None:
        if self._ready is None:
            return
        if message.get("event") == "ready":
            self._started = True
            self._ready.settle(message)
        elif message.get("event") == "fatal":
            error = message.get("error") or {}
            functions = error.get("functions")
            hint = ("name an exported function: node:path/to/store.js#exportName"
                    + (f" (it exports {', '.join(functions[:8])})" if functions else "")
                    if functions is not None else "fix the module so that node can import it")
            self._threads[2].join(2)  # the module's last output, for the message
            self._ready.settle(error=NodeStoreSetupFailed(
                f"{self.label}: {error.get('name', 'Error')}: {error.get('message', '')}"
                f"{self._tail_text()}", hint=hint))

    def _on_exit(self) -> None:
        """The reply pipe closed: the process is exiting. Unless we closed it, that is a crash."""
        code = _wait(self.proc, 5.0)
        self._threads[2].join(2)  # the output thread: the last lines of a crash
        if self._closing:
            crash = NodeSidecarCrashed(f"{self.label}: the sidecar was closed")
        elif not self._started:  # start() raises it (or the module's own fatal error)
            crash = NodeStoreSetupFailed(
                f"{self.label}: the Node sidecar exited (code {code}) before it was ready"
                f"{self._tail_text()}", hint="fix the module so that node can import it",
                returncode=code, output_tail="\n".join(self._tail))
        else:
            crash = NodeStoreCrashed(
                f"{self.label}: crash: the Node sidecar exited unexpectedly (exit code {code})"
                f"{self._tail_text()}",
                hint="the module crashed its process (an unhandled 'error' event or rejection?);"
                     " its output is above", returncode=code, output_tail="\n".join(self._tail))
            log.error("%s", crash.message)
            self._crash = crash
        if self._ready is not None:
            self._ready.settle(error=crash)
        self._fail_all(crash)

    def _fail_all(self, crash: NodeSidecarCrashed) -> None:
        with self._lock:
            if self._dead is None:
                self._dead = crash
            pending, self._pending = self._pending, {}
            dead = self._dead
        for waiter, _op, _company in pending.values():
            waiter.settle(error=dead)

    def _tail_text(self) -> str:
        """The module's last output lines, led by its first error line when that scrolled
        away (Node prints the error, then its stack, then maybe a dump of a whole object)."""
        shown = list(self._tail)[-SHOWN_TAIL_LINES:]
        if not shown:
            return ""
        first_error = self._first_error
        lead = (f"\n--- first error in the module output ---\n{first_error}"
                if first_error is not None and all(first_error not in line for line in shown)
                else "")
        return lead + "\n--- module output (last lines) ---\n" + "\n".join(shown)

    def _scrub(self, line: str) -> str:
        for secret in self._secrets:
            line = line.replace(secret, "***")
        return line


def _describe_op(op: str) -> str:
    return {"load": "load (useAuthState(companyId))", "get": "state.keys.get",
            "set": "state.keys.set", "save": "saveCreds", "clear": "state.keys.clear",
            "delete": "deleteSession()", "read": "load + state.keys.get (reader)",
            "readMany": "load + state.keys.get of many companies (reader)",
            "snapshotMany": "snapshot(companyId) of many companies (reader)",
            "snapshot": "snapshot(companyId)", "close": "close()"}.get(op, op)
