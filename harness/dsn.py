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
# raw (not percent-encoded) '@' or ':' inside it is still covered. First choice: the last '@' of
# the authority (which ends at the first / ? # or space), whatever the password holds before it
# ("@," included); a raw '/', '?' or '#' in the password (no URL parser reads that as one, but
# people type it): the first '@' after it that is followed by a host.
_HOST_AFTER = r"(?=@[^\s@/?#]*(?:[/?#\s'\")\]},]|$))"
_URL_USERINFO = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)(?:[^\s/?#]*" + _HOST_AFTER
    + r"|\S*?" + _HOST_AFTER + ")")
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
        if "://" not in dsn:  # key=value: the password as libpq reads it, and as the URL
            try:             # the harness converts it to spells it
                password = dict(_kv_pairs(dsn)).get("password")
            except ValueError:
                password = None
            if password:
                found |= {password, quote(password, safe="")}
    return {s for s in found if s}


# libpq key=value keywords asyncpg understands (as URL parts or query parameters); any other
# is refused rather than passed on as a server setting the server would reject when connecting.
KV_URL_PARTS = frozenset({"host", "hostaddr", "port", "dbname", "user", "password"})
KV_QUERY = frozenset({"passfile", "sslmode", "sslcert", "sslkey", "sslrootcert", "sslcrl",
                      "sslpassword", "sslnegotiation", "ssl_min_protocol_version",
                      "ssl_max_protocol_version", "target_session_attrs", "krbsrvname",
                      "gsslib", "application_name"})
_KV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _kv_pairs(dsn: str) -> list[tuple[str, str]]:
    """libpq's `key = value ...` syntax: values bare (up to white space) or single-quoted,
    backslash escaping `'` and `\\` in both."""
    pairs, i, n = [], 0, len(dsn)
    while True:
        while i < n and dsn[i].isspace():
            i += 1
        if i == n:
            return pairs
        match = _KV_KEY.match(dsn, i)
        if match is None:
            raise ValueError(f"expected a keyword at character {i + 1}")
        key, i = match.group(0), match.end()
        while i < n and dsn[i].isspace():
            i += 1
        if i == n or dsn[i] != "=":
            raise ValueError(f"missing '=' after {key!r}")
        i += 1
        while i < n and dsn[i].isspace():
            i += 1
        value: list[str] = []
        quoted = i < n and dsn[i] == "'"
        i += quoted
        while i < n and (dsn[i] != "'" if quoted else not dsn[i].isspace()):
            if dsn[i] == "\\" and i + 1 < n:
                i += 1
            value.append(dsn[i])
            i += 1
        if quoted:
            if i == n:
                raise ValueError(f"unterminated quoted value of {key!r}")
            i += 1
        pairs.append((key, "".join(value)))


def _kv_to_url(dsn: str) -> str:
    """A libpq key=value connection string as the equivalent postgresql:// URL."""
    pairs = dict(_kv_pairs(dsn))
    unknown = sorted(k for k in pairs if k not in KV_URL_PARTS | KV_QUERY)
    if unknown:
        raise ConfigError(
            f"PostgreSQL DSN {redact(dsn)!r}: {', '.join(unknown)} not supported (the harness "
            "connects with asyncpg, which has no equivalent)",
            hint=f"drop {', '.join(unknown)}; key=value DSNs may use "
                 f"{', '.join(sorted(KV_URL_PARTS | KV_QUERY))}")
    hosts = (pairs.get("host") or pairs.get("hostaddr") or "").split(",")
    ports = (pairs.get("port") or "").split(",")
    if len(ports) == 1:
        ports = ports * len(hosts)
    if len(ports) != len(hosts):
        raise ConfigError(f"PostgreSQL DSN {redact(dsn)!r}: {len(hosts)} hosts but "
                          f"{len(ports)} ports", hint="give one port, or one per host")
    query = {k: v for k, v in pairs.items() if k in KV_QUERY}
    tcp = []
    for host, port in zip(hosts, ports, strict=True):
        if host.startswith("/"):  # a Unix socket directory: a query parameter in URL form
            query["host"] = host
            continue
        shown = f"[{host}]" if ":" in host else host
        tcp.append(shown + (f":{port}" if port else ""))
    userinfo = ""
    if pairs.get("user"):
        userinfo = quote(pairs["user"], safe="")
        if pairs.get("password"):
            userinfo += ":" + quote(pairs["password"], safe="")
        userinfo += "@"
    elif pairs.get("password"):
        query["password"] = pairs["password"]
    if query.get("host") and ports[0]:
        query.setdefault("port", ports[0])
    path = "/" + quote(pairs["dbname"], safe="") if pairs.get("dbname") else ""
    return urlunsplit(("postgresql", userinfo + ",".join(tcp), path, urlencode(query), ""))


def normalize_dsn(dsn: str) -> str:
    """The DSN as a postgresql:// URL (the form asyncpg and the harness's own DSN handling
    take): URLs unchanged, a libpq key=value string converted. ConfigError when neither."""
    dsn = dsn.strip()
    if "://" in dsn or not dsn:
        return dsn
    try:
        return _kv_to_url(dsn)
    except ValueError as exc:
        raise ConfigError(f"invalid PostgreSQL DSN {redact(dsn)!r}: {exc}",
                          hint="use postgresql://user:password@host:5432/database, or "
                               "host=... port=... dbname=... user=... password=...") from None


def check_dsn(dsn: str) -> str:
    """`dsn` as a URL asyncpg can use (a libpq key=value string converted), else a
    `ConfigError` that never echoes the password.

    Catches before any I/O what asyncpg would only report when connecting, or as a bare
    ValueError: another scheme, a port that is not a number in 1-65535 (for every host of a
    multi-host DSN), a key=value keyword asyncpg has no equivalent for.
    """
    hint = "use postgresql://user:password@host:5432/database"
    dsn = normalize_dsn(dsn)
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
