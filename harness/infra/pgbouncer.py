"""PgBouncer in transaction mode in front of a PostgreSQL server, for tests of the store behind a
pooler (many production setups put one there).

    with PgBouncer.start(upstream_dsn) as bouncer:
        dsn = bouncer.dsn_for(test_dsn)   # same database and user, through PgBouncer

Uses the system's `pgbouncer` (Debian/Ubuntu: `apt-get install pgbouncer`; found on PATH or in
/usr/sbin). It listens on a free loopback port, lets any local client in (`auth_type = any`) and
logs in to PostgreSQL as the upstream DSN's user; every database name is passed through. As root
it runs as the harness's service user (PgBouncer refuses root). Stopped on exit and on failure;
a watchdog kills it if we are killed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import unquote, urlsplit

from harness.dsn import with_host_port
from harness.errors import ProvisioningError
from harness.infra.ports import free_port, port_accepts
from harness.infra.reaper import CleanupPlan, Reaper
from harness.infra.unprivileged import service_user

HOW_TO_INSTALL = "install PgBouncer (Debian/Ubuntu: apt-get install pgbouncer)"
START_TIMEOUT_S = 10.0


def find_pgbouncer() -> str | None:
    """The pgbouncer executable, or None."""
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")


def pgbouncer_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    found = re.search(r"PgBouncer (\S+)", out.stdout + out.stderr)
    return found.group(1) if found else "unknown"


def _ini_value(text: str) -> str:
    """A value safe inside pgbouncer.ini's `key=value` connection string (no spaces/quotes)."""
    if re.search(r"[\s'\"\\]", text):
        raise ProvisioningError(f"cannot pass {text!r} to PgBouncer's configuration",
                                hint="use an upstream user and password without spaces or "
                                "quotes")
    return text


class PgBouncer:
    """A running PgBouncer (`pool_mode = transaction`); `stop()` or use as a context manager."""

    def __init__(self, proc: subprocess.Popen[bytes], base_dir: Path, host: str, port: int,
                 version: str, reaper: Reaper | None) -> None:
        self.proc, self.base_dir, self.host, self.port = proc, base_dir, host, port
        self.version = version
        self._reaper = reaper

    @classmethod
    def start(cls, upstream_dsn: str, *, pool_size: int = 5) -> PgBouncer:
        binary = find_pgbouncer()
        if binary is None:
            raise ProvisioningError("pgbouncer not found", hint=HOW_TO_INSTALL)
        version = pgbouncer_version(binary)
        up = urlsplit(upstream_dsn)
        auth = f"host={_ini_value(up.hostname or '127.0.0.1')} port={up.port or 5432}"
        auth += f" user={_ini_value(unquote(up.username or 'postgres'))}"
        if up.password:
            auth += f" password={_ini_value(unquote(up.password))}"
        base_dir = Path(tempfile.mkdtemp(prefix="authstate-pgbouncer-"))
        host, port = "127.0.0.1", free_port()
        ini = base_dir / "pgbouncer.ini"
        ini.write_text("\n".join([
            "[databases]",
            f"* = {auth}",
            "[pgbouncer]",
            f"listen_addr = {host}",
            f"listen_port = {port}",
            "unix_socket_dir =",
            "auth_type = any",
            "pool_mode = transaction",
            f"default_pool_size = {pool_size}",
            "max_client_conn = 200",
            f"pidfile = {base_dir / 'pgbouncer.pid'}",
            "",
        ]))
        ini.chmod(0o600)
        user = service_user()
        if user is not None:
            user.chown(base_dir)
            user.chown(ini)
        log = base_dir / "pgbouncer.log"  # its log goes to stderr: a file, never a full pipe
        with log.open("wb") as log_file:
            proc = subprocess.Popen([binary, str(ini)], stdout=subprocess.DEVNULL,
                                    stderr=log_file, start_new_session=True,
                                    preexec_fn=user.demote() if user else None)
        reaper = Reaper.spawn(CleanupPlan(kill_pids=[proc.pid], remove_paths=[str(base_dir)]))
        bouncer = cls(proc, base_dir, host, port, version, reaper)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_accepts(host, port, timeout=0.2):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip()[-800:]
                bouncer.stop()
                raise ProvisioningError(f"pgbouncer {version} did not start on {host}:{port}: "
                                        f"{tail}", hint="see the message above")
            time.sleep(0.05)
        return bouncer

    def dsn_for(self, dsn: str) -> str:
        """`dsn` (same database, user, password and options) through this PgBouncer."""
        return with_host_port(dsn, self.host, self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        shutil.rmtree(self.base_dir, ignore_errors=True)
        if self._reaper is not None:
            self._reaper.release()
            self._reaper = None

    def __enter__(self) -> PgBouncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
