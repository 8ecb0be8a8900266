"""libpq key=value DSNs are accepted as docs/cli.md lists them (converted to the equivalent URL
before any I/O); keywords asyncpg has no equivalent for are refused with the list it takes."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qsl, urlsplit

import pytest

from harness.authstate import PostgresAuthStore
from harness.authstate.creds import init_auth_creds
from harness.cli import main
from harness.dsn import check_dsn, passwords_of
from harness.errors import ConfigError


@pytest.mark.parametrize(("kv", "url"), [
    ("host=127.0.0.1 port=5432 user=app password=hunter2 dbname=auth",
     "postgresql://app:hunter2@127.0.0.1:5432/auth"),
    ("host = db1,db2  port=5433 dbname=auth user='a b' password='p@ss w\\'d' sslmode=require",
     "postgresql://a%20b:p%40ss%20w%27d@db1:5433,db2:5433/auth?sslmode=require"),
    ("host=/var/run/postgresql dbname=auth user=app",
     "postgresql://app@/auth?host=%2Fvar%2Frun%2Fpostgresql"),
    ("host=::1 port=6543 user=app", "postgresql://app@[::1]:6543"),
    ("postgresql://app@h:5432/x", "postgresql://app@h:5432/x"),  # URLs as they are
])
def test_key_value_dsns_become_the_equivalent_url(kv: str, url: str) -> None:
    assert check_dsn(kv) == url


@pytest.mark.parametrize(("kv", "says"), [
    ("host=h connect_timeout=10", "connect_timeout not supported"),
    ("host=h port=99999", "port '99999'"),
    ("host=h password='unterminated", "unterminated quoted value"),
    ("host h", "missing '='"),
])
def test_what_asyncpg_cannot_take_is_refused_before_any_io(kv: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says) as err:
        check_dsn(kv)
    assert err.value.hint


def test_every_spelling_of_a_key_value_password_is_scrubbed() -> None:
    assert {"p@ss w'd", "p%40ss%20w%27d"} <= passwords_of("user=a password='p@ss w\\'d'")


def test_health_works_with_a_key_value_dsn(pg_dsn: str, capsys) -> None:
    async def seed() -> None:
        store = await PostgresAuthStore.open(pg_dsn)
        try:
            await store.write_creds("acme", init_auth_creds())
        finally:
            await store.close()

    asyncio.run(seed())
    parts = urlsplit(pg_dsn)
    kv = (f"host={parts.hostname} port={parts.port} user={parts.username} "
          f"dbname={parts.path.lstrip('/')}"
          + "".join(f" {k}={v}" for k, v in parse_qsl(parts.query)))
    assert "://" not in kv
    code = main(["health", "--dsn", kv, "--company", "acme", "--samples", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
