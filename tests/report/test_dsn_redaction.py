"""`harness.dsn.redact_text`: whatever form a DSN takes, its password leaves no trace.

The property: the redacted text does not depend on the password at all -- two DSNs that differ
only in their password redact to the same text -- so nothing of it (raw, percent-encoded,
quoted) can survive. And what is not a password (user, host, port, database) survives.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.dsn import check_dsn, passwords_of, redact, redact_text
from harness.errors import ConfigError
from harness.report.redact import scrub

PASSWORD = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl",
                                                                    "Zp")), min_size=1,
                   max_size=30)
NAME = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
HOST = st.sampled_from(["127.0.0.1", "db.internal", "[::1]", "pg-1.example.com"])
PORT = st.integers(1, 65535)


def _libpq_quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


FORMS = {
    "userinfo, percent-encoded": lambda u, pw, h, p, d:
        f"postgresql://{u}:{quote(pw, safe='')}@{h}:{p}/{d}?sslmode=disable",
    "userinfo, raw": lambda u, pw, h, p, d: f"postgres://{u}:{pw}@{h}:{p}/{d}",
    "query": lambda u, pw, h, p, d:
        f"postgresql://{u}@{h}:{p}/{d}?{urlencode({'password': pw})}&sslmode=require",
    "query first": lambda u, pw, h, p, d:
        f"postgresql://{u}@{h}:{p}/{d}?password={quote(pw, safe='')}",
    "key=value": lambda u, pw, h, p, d:
        f"host={h} port={p} user={u} password={_libpq_quote(pw)} dbname={d}",
    "PGPASSWORD": lambda u, pw, h, p, d: f"PGPASSWORD={_libpq_quote(pw)} psql -h {h} -U {u}",
    "json": lambda u, pw, h, p, d: '{"user": "%s", "password": %s}' % (  # noqa: UP031
        u, '"' + pw.replace("\\", "\\\\").replace('"', '\\"') + '"'),
}


@pytest.mark.parametrize("form", list(FORMS))
@given(user=NAME, pw1=PASSWORD, pw2=PASSWORD, host=HOST, port=PORT, db=NAME)
def test_redacted_text_does_not_depend_on_the_password(form, user, pw1, pw2, host, port,
                                                        db) -> None:
    build = FORMS[form]
    if form == "userinfo, raw" and any(c in pw1 + pw2 for c in "/?#"):
        return  # not a URL any parser reads that way: such passwords must be percent-encoded
    one, two = build(user, pw1, host, port, db), build(user, pw2, host, port, db)
    for wrap in ("{}", "error: opening the store at {} failed: refused", "dsn='{}'"):
        assert redact_text(wrap.format(one)) == redact_text(wrap.format(two))
        assert scrub(wrap.format(one)) == scrub(wrap.format(two))
    shown = redact(one)
    assert user in shown and (form == "json" or host.strip("[]") in shown)


@given(pw=PASSWORD)
def test_a_password_as_asyncpg_decodes_it_is_scrubbed_literally(pw) -> None:
    dsn = f"postgresql://u:{quote(pw, safe='')}@h/db"
    assert pw in passwords_of(dsn)
    if len(pw) >= 3:
        assert pw not in redact_text(f"auth failed for {pw!s} at h", passwords_of(dsn))


def test_pgpassword_from_the_environment_is_a_known_secret(monkeypatch) -> None:
    monkeypatch.setenv("PGPASSWORD", "s3cr3t-env")
    assert "s3cr3t-env" in passwords_of("postgresql://u@h/db")


@pytest.mark.parametrize(("dsn", "words"), [
    ("postgresql://u:hunter2@h:99999/db", "port '99999'"),
    ("postgresql://u:hunter2@h:0/db", "port '0'"),
    ("postgresql://u:hunter2@h1:5432,h2:x/db", "port 'x'"),
    ("mysql://u:hunter2@h/db", "scheme"),
    ("host=h password=hunter2 connect_timeout=5", "connect_timeout not supported"),
    ("host=h port=99999 password=hunter2", "port '99999'"),
])
def test_check_dsn_refuses_without_echoing_the_password(dsn, words) -> None:
    with pytest.raises(ConfigError, match=words) as err:
        check_dsn(dsn)
    assert "hunter2" not in str(err.value)


def test_a_good_dsn_passes_unchanged() -> None:
    dsn = "postgresql://u:p@[::1]:5432,h2:5433/db?sslmode=disable"
    assert check_dsn(dsn) == dsn


@pytest.mark.parametrize("password", ["@,", "@h,", "p@ss", "pa/ss", "@h)"])
def test_a_raw_at_sign_in_a_url_password_leaves_nothing_of_it(password) -> None:
    """Found by the property above: a password "@," left "@," in the output (the first '@' was
    followed by what looked like an empty host and a terminator)."""
    for text in (f"postgres://a:{password}@127.0.0.1:1/a",
                 f"error at postgresql://app:{password}@db:5432/x, retrying"):
        shown = redact_text(text)
        assert password not in shown and "***@" in shown, shown
