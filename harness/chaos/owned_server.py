"""A PostgreSQL server of the chaos suite's own, for the faults that stop or kill the process.

Process faults (pg-kill, pg-restart) must not touch the server the other suites share, and can
only act on a server whose process the harness controls. `owned_postgres()` starts a dedicated
embedded server (stopped on exit, failure and Ctrl-C; its reaper also covers a kill -9 of the
harness) unless the run was pointed at an external server (`AUTHSTATE_PG_KIND=external`, set by
the main job for `--dsn`), in which case it raises NemesisUnavailable with how to enable them.

    reason = process_control_unavailable()        # None, or why process faults must skip
    with owned_postgres() as server:              # EmbeddedPostgres: .dsn (superuser), .crash()
        ...
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from harness.chaos.nemesis_api import NemesisUnavailable
from harness.errors import ProvisioningError
from harness.infra.postgres.embedded import EmbeddedPostgres

PG_KIND_ENV = "AUTHSTATE_PG_KIND"
ENABLE_HINT = ("process faults need a PostgreSQL the harness starts itself; run without --dsn "
               "(or with AUTHSTATE_PG_KIND=embedded)")

# The owned server only serves one scenario's database at a time: a small footprint, and
# crash recovery stays short whatever the workload wrote.
OWNED_SETTINGS: dict[str, str] = {"max_connections": "200", "shared_buffers": "64MB"}


def process_control_unavailable(environ: Mapping[str, str] | None = None) -> str | None:
    """Why process faults cannot run here, or None when they can."""
    kind = (environ if environ is not None else os.environ).get(PG_KIND_ENV, "") or "embedded"
    if kind in ("embedded", "container"):
        return None
    if kind == "external":
        return "the run uses an external PostgreSQL (--dsn), whose process is not ours"
    return f"unknown {PG_KIND_ENV}={kind!r} (expected embedded, container or external)"


@contextlib.contextmanager
def owned_postgres(settings: Mapping[str, str] | None = None) -> Iterator[EmbeddedPostgres]:
    """A running embedded PostgreSQL only this block uses; stopped and removed afterwards."""
    reason = process_control_unavailable()
    if reason is not None:
        raise NemesisUnavailable(reason, hint=ENABLE_HINT)
    try:
        server = EmbeddedPostgres(settings={**OWNED_SETTINGS, **(settings or {})})
    except ProvisioningError as exc:
        raise NemesisUnavailable(f"cannot start a PostgreSQL of our own: {exc.message}",
                                 hint=exc.hint or ENABLE_HINT) from exc
    with server:  # starts it; close() on any exit (and the reaper if we are killed)
        yield server
