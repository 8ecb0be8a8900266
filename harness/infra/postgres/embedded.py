"""An executor that owns one PostgreSQL server process started from the embedded binaries.

`initdb` + `pg_ctl` into a private temporary directory, listening on 127.0.0.1 with an ephemeral
port (TCP, because the fault proxy sits between clients and the server). As root, the server runs
as an unprivileged system user. A reaper process guarantees the server is stopped and the
directory removed even if we are killed; `close()` does the same in the orderly case.
The server can be stopped and started again on the same data (chaos: kill PostgreSQL mid-write).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.errors import ProvisioningError
from harness.infra.ports import free_port
from harness.infra.postgres.binaries import bin_dir_for, server_version
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
        return self

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> EmbeddedPostgres:
        """Initialise the data directory on first start, then start the server and wait for it."""
        try:
            if not (self.data_dir / "PG_VERSION").exists():
                self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust",
                          "-E", "UTF8", "--locale=C", "--no-instructions", "--no-sync")
                self._write_settings()
            self._start_server()
        except BaseException:
            self.close()
            raise
        return self

    def _start_server(self) -> None:
        attempts = 3 if self.port == 0 else 1
        for attempt in range(attempts):
            port = self.port or free_port(self.host)
            opts = [f"-h {self.host}", f"-p {port}", f"-k {self.base_dir}"]
            proc = self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_path), "-w",
                             "-t", "60", "-o", " ".join(opts), "start", check=False)
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
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            if self._reaper is not None:
                self._reaper.release()

    def __enter__(self) -> EmbeddedPostgres:
        return self.start() if not self.is_running() else self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    @property
    def dsn(self) -> str:
        """Superuser DSN for the maintenance database `postgres`."""
        return self.dsn_for("postgres")

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

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

