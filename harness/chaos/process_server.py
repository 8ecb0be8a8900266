"""The PostgreSQL that process faults (pg-kill, pg-restart) may stop: started on first use,
once, and stopped by `close()`; none when the run's server is external (not ours to stop).

Shared by the chaos suite's fixtures and the pytest plugin's chaos runner.
"""

from __future__ import annotations

import contextlib
import threading

from harness.chaos.nemesis_api import ControllableServer
from harness.chaos.owned_server import owned_postgres
from harness.errors import HarnessError

PROCESS_SKIP_REASON = (
    "process faults stop and kill the PostgreSQL server, and this run's server is external "
    "(a --dsn / AUTHSTATE_DSN the harness does not own), so none is started for them")
PROCESS_SKIP_HINT = ("run without --dsn (the harness then starts its own embedded PostgreSQL "
                     "for these scenarios)")


class ProcessServer:
    """`get()`: the server process faults act on (harness.chaos.owned_server), or None and
    `reason` when there is none."""

    def __init__(self, kind: str) -> None:
        self._stack = contextlib.ExitStack()
        self._server: ControllableServer | None = None
        self._lock = threading.Lock()
        self.reason = "" if kind != "external" else f"{PROCESS_SKIP_REASON} ({PROCESS_SKIP_HINT})"

    def get(self) -> ControllableServer | None:
        if self.reason:
            return None
        with self._lock:
            if self._server is None:
                try:
                    self._server = self._stack.enter_context(owned_postgres())
                except HarnessError as exc:
                    self.reason = str(exc)
                    return None
            return self._server

    def close(self) -> None:
        with self._lock:
            self._server = None
            self._stack.close()
