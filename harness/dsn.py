"""Small, dependency-free DSN manipulation (asyncpg/libpq URL form).

Pure (stdlib only) and at the bottom of the layers: the store, provisioning, fixtures and the
report all need `redact`, and none of them should import another's package for it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from harness.errors import ConfigError


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


# -- redaction: the one place that knows where a password can hide --------------------------------
REDACTED_PASSWORD = "***"

# scheme://user:PASSWORD@host...: the password runs to the last '@' before the host part, so a
# raw (not percent-encoded) '@' or ':' inside it is still covered.
_URL_USERINFO = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)\S*?(?=@[^\s@/?#]*(?:[/?#\s'\")\]},]|$))")
# ?password=... / &password=... in a URL query (also sslpassword): up to the next '&'.
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:ssl)?password=)[^&\s#'\"]*", re.IGNORECASE)
# password=..., PGPASSWORD=..., "password": "..." in libpq key=value strings, env dumps, JSON.
_KV_PASSWORD = re.compile(
    r"(?P<head>(?<![A-Za-z0-9_])(?:PG|ssl)?password[\"']?\s*[=:]\s*)"
    r"(?:'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s,;}\]&)'\"]+)", re.IGNORECASE)


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every password in it replaced by `***`: in DSN URLs (`user:pw@`,
    `?password=`), libpq key=value strings (`password='...'`), `PGPASSWORD=...`, JSON
    `"password": ...`, and any literal `secrets` (e.g. the PGPASSWORD a connection used, a
    password as asyncpg decoded it from its percent-encoding)."""
    if not text:
        return text
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        text = text.replace(secret, REDACTED_PASSWORD)
    text = _URL_USERINFO.sub(lambda m: m.group("head") + REDACTED_PASSWORD, text)
    text = _QUERY_PASSWORD.sub(lambda m: m.group("head") + REDACTED_PASSWORD, text)
    return _KV_PASSWORD.sub(lambda m: m.group("head") + REDACTED_PASSWORD, text)


def redact(dsn: str) -> str:
    """The DSN (any form) with its password replaced, safe for logs and reports."""
    return redact_text(dsn)


def passwords_of(dsn: str | None) -> set[str]:
    """Every spelling of the password a connection with `dsn` may use (raw and decoded, from
    the URL's user info or query, and PGPASSWORD, which libpq and asyncpg fall back to):
    literal values to scrub from output whatever the text around them."""
    found = {os.environ.get("PGPASSWORD", "")}
    if dsn:
        try:
            parts = urlsplit(dsn)
            if parts.password:
                found |= {parts.password, unquote(parts.password)}
            for key, value in parse_qsl(parts.query, keep_blank_values=True):
                if key.lower() in ("password", "sslpassword"):
                    found |= {value, quote(value, safe="")}
        except ValueError:
            pass
        for match in _KV_PASSWORD.finditer(dsn):
            raw = match.group(0)[len(match.group("head")):]
            found |= {raw, raw.strip("'\"")}
    return {s for s in found if s}


def check_dsn(dsn: str) -> str:
    """`dsn` if asyncpg can use it, else a `ConfigError` that never echoes the password.

    Catches before any I/O what asyncpg would only report when connecting, or as a bare
    ValueError: a libpq key=value string (asyncpg takes URLs only), another scheme, a port that
    is not a number in 1-65535 (for every host of a multi-host DSN).
    """
    hint = "use postgresql://user:password@host:5432/database"
    if "://" not in dsn:
        raise ConfigError(f"unsupported PostgreSQL DSN {redact(dsn)!r}: key=value connection "
                          "strings are not supported", hint=hint)
    try:
        parts = urlsplit(dsn)
    except ValueError as exc:
        raise ConfigError(f"invalid PostgreSQL DSN {redact(dsn)!r}: {exc}", hint=hint) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"invalid PostgreSQL DSN {redact(dsn)!r}: the scheme must be "
                          "postgresql:// or postgres://", hint=hint)
    hosts = parts.netloc.rpartition("@")[2]
    for host in hosts.split(","):
        port = host.rpartition("]")[2].rpartition(":")[2] if ":" in host.rpartition("]")[2] \
            else ""
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ConfigError(f"invalid PostgreSQL DSN {redact(dsn)!r}: port {port!r} is not a "
                              "number from 1 to 65535", hint=hint)
    return dsn
