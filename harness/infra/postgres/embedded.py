"""An executor that owns one PostgreSQL server process started from the embedded binaries.

`initdb` + `pg_ctl` into a private temporary directory, listening on 127.0.0.1 with an ephemeral
port (TCP, because the fault proxy sits between clients and the server). As root, the server runs
as an unprivileged system user. A reaper process guarantees the server is stopped and the
directory removed even if we are killed; `close()` does the same in the orderly case.
The server can be stopped and started again on the same data (chaos: kill PostgreSQL mid-write):
`signal()` sends the postmaster a signal (SIGKILL = crash), `wait_stopped()` waits until every
process of the server is gone (backends orphaned by a killed postmaster included), `start(wait=
False)` launches it again on the same data and port, and `await wait_accepting()` measures when
it accepts connections (crash recovery included), with our own probe.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal as signals
import subprocess
import tempfile
import time
from pathlib import Path

from harness.errors import ProvisioningError
from harness.infra.ports import free_port
from harness.infra.postgres.binaries import bin_dir_for, server_version
from harness.infra.postgres.readiness import Readiness
from harness.infra.postgres.readiness import wait_accepting as _wait_accepting
from harness.infra.reaper import CleanupPlan, Reaper
from harness.infra.unprivileged import ServiceUser, service_user

DEFAULT_SETTINGS: dict[str, str] = {
    "max_connections": "300",  # 100+ companies in load profiles, plus pools
    "shared_buffers": "128MB",
    "log_min_messages": "warning",
    "log_line_prefix": "%m [%p] ",
}


class EmbeddedPostgres:
    """A PostgreSQL server we started; use as a context manager or call `close()`."""

    kind = "embedded"

    def __init__(self, *, host: str = "127.0.0.1", settings: dict[str, str] | None = None,
                 base_dir: str | os.PathLike[str] | None = None, detached: bool = False) -> None:
        """`detached=True` (for `authstate-harness pg up`): no reaper, the server outlives us
        until `pg down`; everything else is stopped when its owner ends, however it ends."""
        self.host = host
        self.port = 0
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._user: ServiceUser | None = service_user()
        self._bin = bin_dir_for(self._user)
        self.version = server_version(self._bin)
        self.base_dir = Path(tempfile.mkdtemp(prefix="authstate-pg-", dir=base_dir))
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "postgresql.log"
        if self._user:
            self._user.chown(self.base_dir)
        os.chmod(self.base_dir, 0o700)
        self.last_start_at: float | None = None  # monotonic, when the last start was issued
        self._reaper = None if detached else Reaper.spawn(CleanupPlan(
            commands=[{"argv": [str(self._bin / "pg_ctl"), "-D", str(self.data_dir), "-m",
                                "immediate", "-w", "-t", "20", "stop"],
                       "uid": self._user.uid if self._user else None}],
            remove_paths=[str(self.base_dir)],
        ))
        self._closed = False

    @classmethod
    def attach(cls, base_dir: str | os.PathLike[str], port: int,
               host: str = "127.0.0.1") -> EmbeddedPostgres:
        """A handle on a detached server started earlier (for `pg status` / `pg down`)."""
        self = cls.__new__(cls)
        self.host, self.port, self.settings = host, port, dict(DEFAULT_SETTINGS)
        self._user = service_user()
        self._bin = bin_dir_for(self._user)
        self.version = server_version(self._bin)
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "postgresql.log"
        self._reaper = None
        self._closed = False
        self.last_start_at = None
        return self

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, *, wait: bool = True) -> EmbeddedPostgres:
        """Initialise the data directory on first start, then start the server and wait for it.

        Started again after a stop or a crash, it uses the same data and port. `wait=False`
        (chaos) only launches it: `await wait_accepting()` then measures when it is ready, with
        a probe finer than pg_ctl's. The first start always waits (it picks the port)."""
        try:
            if not (self.data_dir / "PG_VERSION").exists():
                self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                          "-E", "UTF8", "--locale=C", "--no-instructions", "--no-sync")
                self._write_settings()
            self._start_server(wait=wait or self.port == 0)
        except BaseException:
            self.close()
            raise
        return self

    def _start_server(self, *, wait: bool = True) -> None:
        attempts = 3 if self.port == 0 else 1
        for attempt in range(attempts):
            port = self.port or free_port(self.host)
            opts = [f"-h {self.host}", f"-p {port}", f"-k {self.base_dir}"]
            self.last_start_at = time.monotonic()
            proc = self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path),
                             "-w" if wait else "-W", "-t", "60", "-o", " ".join(opts), "start",
                             check=False)
            if proc.returncode == 0:
                self.port = port
                return
            if attempt == attempts - 1 or "could not bind" not in self.log_tail():
                raise ProvisioningError(
                    f"PostgreSQL did not start (pg_ctl exit {proc.returncode}): "
                    f"{proc.stderr.strip() or proc.stdout.strip()}\n--- server log ---\n"
                    f"{self.log_tail()}",
                    hint="see the log above; free disk space and shared memory are the usual "
                    "causes. Or use an existing server with --dsn",
                )

    def _write_settings(self) -> None:
        """Our settings in an included file (values may hold spaces, so not on the command line)."""
        lines = [f"{k} = '{v}'" for k, v in self.settings.items()]
        conf = self.data_dir / "authstate-harness.conf"
        conf.write_text("\n".join(lines) + "\n")
        with (self.data_dir / "postgresql.conf").open("a") as main_conf:
            main_conf.write("\ninclude = 'authstate-harness.conf'\n")
        if self._user:
            self._user.chown(conf)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (`immediate` = crash, recovery on next start)."""
        if not self.is_running():
            return
        proc = self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30",
                         "stop", check=False)
        if proc.returncode != 0 and self.is_running():
            pid = self.pid
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 9)

    def close(self) -> None:
        """Stop the server and remove every file; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop("fast")
            self.wait_stopped(timeout=10.0)  # backends orphaned by a crash, if any
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            if self._reaper is not None:
                self._reaper.release()

    def __enter__(self) -> EmbeddedPostgres:
        return self.start() if not self.is_running() else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- process control (chaos) -----------------------------------------------------------------
    def processes(self) -> list[int]:
        """Live processes of this server: the postmaster, its children, and children orphaned by
        a killed postmaster (every one of them runs in the data directory)."""
        return _processes_in(self.data_dir)

    def signal(self, sig: int = signals.SIGKILL) -> int:
        """Send `sig` to the postmaster and return its pid: SIGKILL = crash (no shutdown at all;
        the next start runs crash recovery), SIGQUIT = immediate, SIGINT = fast, SIGTERM = smart
        shutdown. As root the server runs as another user; we may still signal it."""
        pid = self.pid
        if pid is None or not _alive(pid):
            raise ProvisioningError(f"PostgreSQL in {self.data_dir} is not running",
                                    hint="start it first (start())")
        os.kill(pid, sig)
        return pid

    def wait_stopped(self, timeout: float = 15.0) -> float:
        """Wait until no process of this server is left and return the seconds waited.

        A SIGKILLed postmaster leaves its children running until each notices (backends in a
        long statement only at their next check); they still hold the shared memory, and a new
        postmaster refuses to start while they do. Whatever is left after `timeout` gets
        SIGKILL. Lock files a killed postmaster could not remove are removed once nothing of it
        runs (its pid may linger as a zombie that would make the new postmaster refuse)."""
        started = time.monotonic()
        deadline = started + timeout
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.01)
        if left:
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signals.SIGKILL)
            kill_deadline = time.monotonic() + 10.0
            while self.processes() and time.monotonic() < kill_deadline:
                time.sleep(0.01)
        self._remove_stale_lock_files()
        return time.monotonic() - started

    def _remove_stale_lock_files(self) -> None:
        if self.processes():
            return
        stale = [self.data_dir / "postmaster.pid"]
        if self.port:
            stale.append(self.base_dir / f".s.PGSQL.{self.port}.lock")
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def crash(self, sig: int = signals.SIGKILL, *, orphan_timeout: float = 15.0) -> int:
        """Kill the postmaster with `sig` and wait (bounded) until none of its processes is
        left, so `start()` can follow at once. Returns the killed pid."""
        pid = self.signal(sig)
        self.wait_stopped(orphan_timeout)
        return pid

    async def wait_accepting(self, *, within: float = 60.0, interval: float = 0.01,
                             dsn: str | None = None) -> Readiness:
        """Probe until the server accepts connections (plain connect + SELECT 1 every
        `interval` s); time counted from the last `start()` when there was one. 57P03 while
        it recovers is counted in the result's `errors`."""
        return await _wait_accepting(dsn or self.dsn, within=within, interval=interval,
                                     since=self.last_start_at)

    def last_redo_seconds(self) -> float | None:
        """Crash recovery's own figure from the server log ("redo done ... elapsed: X s") of
        the last start, or None when the last start needed no redo."""
        text = self.log_tail(200)
        last_start = text.rfind("starting PostgreSQL")
        for line in reversed(text[max(last_start, 0):].splitlines()):
            if "redo done at" in line and "elapsed:" in line:
                with contextlib.suppress(ValueError):
                    return float(line.rsplit("elapsed:", 1)[1].split()[0])
        return None

    # -- facts -----------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def is_running(self) -> bool:
        pid = self.pid
        return pid is not None and _alive(pid)

    @property
    def dsn(self) -> str:
        """Superuser DSN for the maintenance database `postgres`."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        """`sslmode=disable`: the server has no TLS, and the driver's default (`prefer`) would
        ask for it on every connect -- a wasted round trip, and under connection-killing
        faults asyncpg logs "Future exception was never retrieved" from that negotiation."""
        return f"postgresql://postgres@{self.host}:{self.port}/{database}?sslmode=disable"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self._bin / tool), *args], capture_output=True, text=True, check=False,
            preexec_fn=self._user.demote() if self._user else None,
            start_new_session=True,  # keep a terminal's Ctrl-C away from the server
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise ProvisioningError(
                f"{tool} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}",
                hint="check free disk space in the temp directory; or use --dsn",
            )
        return proc

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<EmbeddedPostgres {self.version} {self.host}:{self.port} {state}>"



def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a killed postmaster is reparented to init, which
    may reap it only seconds later)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): kill(0) is all we know
    return state not in (b"Z", b"X")


def _processes_in(directory: Path) -> list[int]:
    """Live processes whose working directory is `directory` (PostgreSQL's all chdir to the
    data directory). Linux /proc only; elsewhere the postmaster pid file is all we know."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    wanted = str(directory.resolve())
    found = []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/cwd") != wanted:
                continue
        except OSError:
            continue
        if _alive(int(entry)):
            found.append(int(entry))
    return found
