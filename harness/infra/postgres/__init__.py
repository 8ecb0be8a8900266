"""PostgreSQL provisioning: embedded (default), container, or an existing server by DSN."""

from harness.infra.postgres.databases import IsolatedDatabases
from harness.infra.postgres.provision import PostgresServer, provision_postgres

__all__ = ["IsolatedDatabases", "PostgresServer", "provision_postgres"]
