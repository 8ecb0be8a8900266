"""Isolated databases per test or per scenario, so no run ever sees another's rows.

A fresh database per use when the role may create databases (embedded, container); otherwise a
fresh schema, selected through the DSN's `search_path` (asyncpg passes it as a server setting).
Names are generated, never user input.
"""

from __future__ import annotations

import uuid

import asyncpg

from harness.dsn import database_of, redact, with_database, with_params
from harness.errors import ProvisioningError


class IsolatedDatabases:
    """Creates and drops scratch databases (or schemas) on one server."""

    def __init__(self, admin_dsn: str, *, prefix: str = "ah") -> None:
        self.admin_dsn = admin_dsn
        self.prefix = prefix
        self._use_schemas: bool | None = None

    async def create(self) -> str:
        """A DSN to a new empty database (or schema) nobody else uses."""
        name = f"{self.prefix}_{uuid.uuid4().hex[:16]}"
        conn = await self._connect()
        try:
            if self._use_schemas is not True:
                try:
                    await conn.execute(f'CREATE DATABASE "{name}"')
                    self._use_schemas = False
                    return with_database(self.admin_dsn, name)
                except asyncpg.InsufficientPrivilegeError:
                    self._use_schemas = True
            await conn.execute(f'CREATE SCHEMA "{name}"')
            return with_params(self.admin_dsn, search_path=name)
        finally:
            await conn.close()

    async def drop(self, dsn: str) -> None:
        conn = await self._connect()
        try:
            if "search_path=" in dsn:
                schema = dsn.rsplit("search_path=", 1)[1].split("&", 1)[0]
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            else:
                name = database_of(dsn)
                if name == database_of(self.admin_dsn):
                    raise ProvisioningError(f"refusing to drop the admin database {name!r}")
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def _connect(self) -> asyncpg.Connection:
        try:
            return await asyncpg.connect(self.admin_dsn, timeout=15)
        except (OSError, asyncpg.PostgresError) as exc:
            raise ProvisioningError(
                f"cannot reach PostgreSQL at {redact(self.admin_dsn)}: {exc}",
                hint="is the server still running? see its log",
            ) from exc
