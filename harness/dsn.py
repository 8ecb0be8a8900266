"""Small, dependency-free DSN manipulation (asyncpg/libpq URL form).

Pure (stdlib only) and at the bottom of the layers: the store, provisioning, fixtures and the
report all need `redact`, and none of them should import another's package for it.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit


def with_database(dsn: str, database: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + quote(database)))


def with_params(dsn: str, **params: str) -> str:
    """Add query parameters; asyncpg passes unknown ones as server settings (e.g. search_path)."""
    parts = urlsplit(dsn)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


def with_host_port(dsn: str, host: str, port: int) -> str:
    """The same DSN pointed at another address (e.g. the fault proxy's listen address)."""
    parts = urlsplit(dsn)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def host_port(dsn: str) -> tuple[str, int]:
    parts = urlsplit(dsn)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def database_of(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/") or "postgres"


def redact(dsn: str) -> str:
    """The DSN with any password replaced, safe for logs and reports."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
