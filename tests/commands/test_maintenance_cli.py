"""export-files, import-files, cleanup and health driven through `harness.cli.main`."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from pathlib import Path

import asyncpg
import pytest

from harness.authstate import PostgresAuthStore
from harness.authstate.creds import init_auth_creds
from harness.cli import main

JID = "5511999999999"
PAIR = {"public": bytes(range(32)), "private": bytes(range(32, 64))}
KEYS = {"pre-key": {str(i): PAIR for i in range(1, 6)},
        "session": {f"{JID}.0": {"_sessions": {}, "version": "v1"}},
        "sender-key": {f"120363@g.us::{JID}::0": b"{}"},
        "lid-mapping": {JID: "123456", "123456_reverse": JID}}


@pytest.fixture(autouse=True)
def no_env_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHSTATE_DSN", raising=False)


async def _seed(dsn: str, company: str = "acme", keys=KEYS) -> None:
    store = await PostgresAuthStore.open(dsn)
    try:
        await store.write_creds(company, init_auth_creds())
        await store.set_keys(company, keys)
    finally:
        await store.close()


async def _sql(dsn: str, query: str, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(query, *args)
    finally:
        await conn.close()


def _q(dsn: str, query: str, *args):
    return asyncio.run(_sql(dsn, query, *args))


def _exec(dsn: str, query: str) -> None:
    async def go() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(query)
        finally:
            await conn.close()

    asyncio.run(go())


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Exit code, stdout and stderr with whitespace runs collapsed (rich wraps at 80 columns)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, " ".join(out.split()), " ".join(err.split())


def _closed_port_dsn() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://postgres:secret@127.0.0.1:{port}/postgres"


# -- export-files / import-files -----------------------------------------------------------------
def test_export_then_import_round_trip_prints_counts_not_ids(
        pg_dsn, tmp_path: Path, capsys) -> None:
    asyncio.run(_seed(pg_dsn))
    out = tmp_path / "acme"
    code, stdout, _ = _run(capsys, "export-files", str(out), "--company", "acme", "--dsn", pg_dsn)
    assert code == 0
    assert "pre-key" in stdout and "keys total" in stdout and " 9 " in stdout
    assert JID not in stdout and "123456" not in stdout
    assert (out / "creds.json").exists() and (out / f"session-{JID}.0.json").exists()

    code, stdout, _ = _run(capsys, "import-files", str(out), "--company", "beta", "--dsn", pg_dsn,
                           "--dry-run")
    assert code == 0 and "dry run: nothing was written" in stdout
    assert _q(pg_dsn, "SELECT count(*) FROM whatsapp_keys WHERE company_id='beta'") == 0

    code, stdout, _ = _run(capsys, "import-files", str(out), "--company", "beta", "--dsn", pg_dsn)
    assert code == 0 and "imported" in stdout and JID not in stdout
    assert _q(pg_dsn, "SELECT count(*) FROM whatsapp_keys WHERE company_id='beta'") == 9

    again = tmp_path / "again"
    assert _run(capsys, "export-files", str(again), "--company", "beta", "--dsn", pg_dsn)[0] == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == \
        {p.name: p.read_bytes() for p in again.iterdir()}


def test_export_into_non_empty_dir_needs_overwrite(pg_dsn, tmp_path: Path, capsys) -> None:
    asyncio.run(_seed(pg_dsn))
    (tmp_path / "x.txt").write_text("x")
    code, _, err = _run(capsys, "export-files", str(tmp_path), "--company", "acme",
                        "--dsn", pg_dsn)
    assert code == 2 and "not empty" in err and "--overwrite" in err
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]
    code, _, _ = _run(capsys, "export-files", str(tmp_path), "--company", "acme", "--dsn",
                      pg_dsn, "--overwrite")
    assert code == 0 and (tmp_path / "creds.json").exists() and (tmp_path / "x.txt").exists()


def test_import_of_bad_folder_lists_files_and_exits_2(pg_dsn, tmp_path: Path,
                                                            capsys) -> None:
    asyncio.run(_seed(pg_dsn))
    out = tmp_path / "f"
    assert _run(capsys, "export-files", str(out), "--company", "acme", "--dsn", pg_dsn)[0] == 0
    (out / "pre-key-1.json").write_text('{"public":{"type":"Buf')
    (out / "stray.json").write_text("{}")
    code, _, err = _run(capsys, "import-files", str(out), "--company", "beta", "--dsn", pg_dsn)
    assert code == 2
    assert "2 bad file(s)" in err and "pre-key-1.json" in err and "stray.json" in err
    assert "nothing was imported" in err
    assert _q(pg_dsn, "SELECT count(*) FROM whatsapp_auth WHERE company_id='beta'") == 0


def test_import_over_existing_company_needs_replace(pg_dsn, tmp_path: Path,
                                                          capsys) -> None:
    asyncio.run(_seed(pg_dsn))
    out = tmp_path / "f"
    _run(capsys, "export-files", str(out), "--company", "acme", "--dsn", pg_dsn)
    code, _, err = _run(capsys, "import-files", str(out), "--company", "acme", "--dsn", pg_dsn)
    assert code == 2 and "already has auth state" in err and "--replace" in err
    code, stdout, _ = _run(capsys, "import-files", str(out), "--company", "acme", "--dsn",
                           pg_dsn, "--replace")
    assert code == 0 and "replaced 9 existing key(s)" in stdout


@pytest.mark.parametrize("argv", [
    ["export-files", "{dir}", "--company", "acme;drop"],
    ["import-files", "{dir}", "--company", ""],
    ["health", "--company", "é"],
])
def test_invalid_company_id_exits_2_and_writes_nothing(
        pg_dsn, tmp_path: Path, capsys, argv) -> None:
    argv = [a.replace("{dir}", str(tmp_path / "d")) for a in argv] + ["--dsn", pg_dsn]
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "invalid company id" in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("argv", [["export-files", "{dir}", "--company", "acme"],
                                  ["import-files", "{dir}", "--company", "acme"],
                                  ["cleanup"], ["health"]])
def test_missing_dsn_is_an_error_with_a_hint(tmp_path: Path, capsys, argv) -> None:
    argv = [a.replace("{dir}", str(tmp_path)) for a in argv]
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "no --dsn and no AUTHSTATE_DSN" in err and "hint" in err


@pytest.mark.parametrize("argv", [["export-files", "{dir}", "--company", "acme"],
                                  ["import-files", "{dir}", "--company", "acme"],
                                  ["cleanup"], ["health"]])
def test_unreachable_database_exits_2_with_hint_and_redacted_dsn(
        tmp_path: Path, capsys, monkeypatch, argv) -> None:
    (tmp_path / "creds.json").write_text(json.dumps({"noiseKey": 1, "signedIdentityKey": 1,
                                                     "signedPreKey": 1, "registrationId": 1}))
    monkeypatch.setenv("AUTHSTATE_DSN", _closed_port_dsn())
    argv = [a.replace("{dir}", str(tmp_path / "out" if argv[0] == "export-files" else tmp_path))
            for a in argv]
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "hint" in err and "secret" not in err
    assert "opening the auth-state store" in err and "refused" in err


# -- cleanup ------------------------------------------------------------------------------------
def test_cleanup_dry_run_then_real_run_with_archive(pg_dsn, tmp_path: Path,
                                                          capsys) -> None:
    asyncio.run(_seed(pg_dsn))
    _exec(pg_dsn, "UPDATE whatsapp_keys SET expires_at = now() - interval '40 days'")
    code, stdout, _ = _run(capsys, "cleanup", "--dsn", pg_dsn, "--dry-run")
    assert code == 0 and "would delete 2 row(s): sender-key 1, session 1" in stdout
    assert "expired >30d ago" in stdout and "now (dry run)" in stdout
    assert "per-type policy" in stdout  # the policy is shown, with what it keeps
    assert re.search(r"pre-key\W+keep\W+5\W", stdout) and re.search(r"session\W+delete\W+1", stdout)
    assert _q(pg_dsn, "SELECT count(*) FROM whatsapp_keys") == 9
    code, stdout, _ = _run(capsys, "cleanup", "--dsn", pg_dsn, "--dry-run", "--json")
    result = json.loads(stdout)
    assert result["would_delete"] == 2 and "deleted" not in result

    archive = tmp_path / "a.jsonl"
    code, stdout, _ = _run(capsys, "cleanup", "--dsn", pg_dsn, "--max-delete", "1",
                           "--archive", str(archive))
    assert code == 0 and "deleted 1 row(s)" in stdout and "before" in stdout
    assert "after" in stdout and "kept 7 row(s) of types the policy keeps" in stdout
    assert len(archive.read_text().splitlines()) == 1
    assert (archive.stat().st_mode & 0o777) == 0o600
    assert '"public"' not in stdout  # key material only ever goes to the archive

    code, stdout, _ = _run(capsys, "cleanup", "--dsn", pg_dsn, "--json")
    result = json.loads(stdout)
    assert code == 0 and result["deleted"] == 1 and result["after"]["eligible_keys"] == 0
    assert _q(pg_dsn, "SELECT count(*) FROM whatsapp_keys WHERE key_type = 'pre-key'") == 5

    code, stdout, _ = _run(capsys, "cleanup", "--dsn", pg_dsn, "--type-policy", "pre-key=delete")
    assert code == 0 and "warning: --type-policy deletes pre-key" in stdout
    assert "deleted 5 row(s)" in stdout
    code, _, err = _run(capsys, "cleanup", "--dsn", pg_dsn, "--archive", str(archive))
    assert code == 2 and "already exists" in err


def test_cleanup_on_a_database_without_tables_creates_nothing(pg_dsn, capsys) -> None:
    code, _, err = _run(capsys, "cleanup", "--dsn", pg_dsn)
    assert code == 2 and "no whatsapp_auth or whatsapp_keys table" in err
    assert _q(pg_dsn, "SELECT to_regclass('whatsapp_keys')") is None


# -- health -------------------------------------------------------------------------------------
def test_health_exit_codes(pg_dsn, capsys) -> None:
    asyncio.run(_seed(pg_dsn))
    code, stdout, _ = _run(capsys, "health", "--dsn", pg_dsn, "--company", "acme",
                           "--samples", "3")
    assert code == 0 and "auth_row" in stdout and "query_latency" in stdout
    assert JID not in stdout

    # 501 keys due for cleanup out of 1010: warning (count > 500), not unhealthy (ratio < 50 %)
    asyncio.run(_seed(pg_dsn, "big", {"session": {str(i): PAIR for i in range(1010)}}))
    _exec(pg_dsn, "UPDATE whatsapp_keys SET expires_at = now() - interval '31 days' "
          "WHERE company_id = 'big' AND key_id::int < 501")
    code, stdout, _ = _run(capsys, "health", "--dsn", pg_dsn, "--company", "big", "--json",
                           "--samples", "2")
    report = json.loads(stdout)
    statuses = {c["name"]: c["status"] for c in report["checks"]}
    assert statuses["expired_count"] == "warning" and statuses["expired_ratio"] == "ok"
    assert report["status"] in ("warning",)  # latency can only add warnings
    assert code == 0
    code, _, _ = _run(capsys, "health", "--dsn", pg_dsn, "--company", "big", "--strict",
                      "--samples", "2")
    assert code == 1

    code, stdout, _ = _run(capsys, "health", "--dsn", pg_dsn, "--company", "nobody",
                           "--samples", "1")
    assert code == 1 and "unhealthy" in stdout and "no creds row" in stdout


def test_health_needs_the_tables(pg_dsn, capsys) -> None:
    code, _, err = _run(capsys, "health", "--dsn", pg_dsn)
    assert code == 2 and "no whatsapp_auth or whatsapp_keys table" in err


@pytest.mark.parametrize(("command", "words"), [
    ("export-files", ["--overwrite", "exit codes", "0600"]),
    ("import-files", ["--dry-run", "--replace", "exit codes", "nothing is written"]),
    ("cleanup", ["--retention-days", "--max-delete", "--archive", "exit codes", "(lower, upper]"]),
    ("health", ["--strict", "exit codes", "1 unhealthy", "p95 > 200 ms"]),
])
def test_help_texts(capsys, command: str, words: list[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for word in words:
        assert word in text, word
