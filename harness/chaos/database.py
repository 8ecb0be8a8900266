"""A fresh database per repetition, owned by its own LOGIN role.

The target connects as that role (never as the superuser): role-level faults need it, because
PostgreSQL exempts superusers from `CONNECTION LIMIT` (53300) and a nemesis can make just this
role read-only (25006) or end just its sessions. Where the admin login may not create roles
(an external server with a restricted user), the target uses the admin login and the
role-level scenarios are skipped with a reason.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from harness.dsn import database_of, redact, with_database
from harness.errors import ProvisioningError

log = logging.getLogger("harness.chaos")

CONNECT_TIMEOUT_S = 15.0


def with_login(dsn: str, user: str, password: str | None) -> str:
    parts = urlsplit(dsn)
    host = parts.netloc.rpartition("@")[2]
    auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password else "")
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}"))


@dataclass
class ScenarioDatabase:
    name: str
    admin_dsn: str  # superuser, this database
    app_dsn: str  # the app role (or the admin login when no role could be made), direct
    app_role: str | None
    server_admin_dsn: str  # superuser, the maintenance database

    @classmethod
    async def create(cls, server_admin_dsn: str, *, prefix: str = "chaos") -> ScenarioDatabase:
        """CREATE ROLE (LOGIN, random password) + CREATE DATABASE ... OWNER role."""
        token = uuid.uuid4().hex[:12]
        name, role = f"{prefix}_{token}", f"{prefix}_app_{token}"
        conn = await _connect(server_admin_dsn)
        try:
            password = secrets.token_urlsafe(18)
            app_role: str | None = role
            try:
                await conn.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
            except asyncpg.InsufficientPrivilegeError:
                app_role = None
                log.warning("chaos: cannot create a role on this server; the target connects "
                            "as the admin login and role-level scenarios are skipped")
            owner = f' OWNER "{app_role}"' if app_role else ""
            await conn.execute(f'CREATE DATABASE "{name}"{owner}')
        finally:
            await conn.close()
        admin_dsn = with_database(server_admin_dsn, name)
        app_dsn = with_login(admin_dsn, app_role, password) if app_role else admin_dsn
        return cls(name, admin_dsn, app_dsn, app_role, server_admin_dsn)

    async def drop(self) -> None:
        """Drop the database (ending its sessions) and the role; never raises for what is
        already gone."""
        if self.name == database_of(self.server_admin_dsn):
            raise ProvisioningError(f"refusing to drop the admin database {self.name!r}")
        conn = await _connect(self.server_admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            if self.app_role:
                await conn.execute(f'DROP ROLE IF EXISTS "{self.app_role}"')
        finally:
            await conn.close()


async def _connect(dsn: str) -> asyncpg.Connection:
    deadline = asyncio.get_running_loop().time() + 30.0
    while True:
        try:
            return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
        except asyncpg.CannotConnectNowError:  # starting up / recovering after a process fault
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.2)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ProvisioningError(
                f"cannot reach PostgreSQL at {redact(dsn)}: {exc}",
                hint="is the server still running? see its log") from exc
