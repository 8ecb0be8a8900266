"""Every command as a new user meets it: hostile arguments, bad DSNs, passwords in the DSN,
closed pipes, option order. Tool errors exit 2 with a hint and no traceback, before any I/O;
no password of any DSN form appears in any output."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from harness.authstate import PostgresAuthStore
from harness.authstate.creds import init_auth_creds
from harness.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2"


@pytest.fixture(autouse=True)
def no_env_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHSTATE_DSN", raising=False)
    monkeypatch.delenv("PGPASSWORD", raising=False)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(capsys, *argv: str) -> tuple[int, str]:
    """Exit code (argparse's SystemExit included) and everything printed, whitespace folded."""
    try:
        code = main(list(argv))
    except SystemExit as done:
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, " ".join((out + err).split())


def _dir_args(command: str, tmp_path: Path) -> list[str]:
    if command == "export-files":
        return ["export-files", str(tmp_path / "out"), "--company", "acme"]
    if command == "import-files":
        (tmp_path / "in").mkdir(exist_ok=True)
        return ["import-files", str(tmp_path / "in"), "--company", "acme"]
    return [command]


MAINTENANCE = ["health", "cleanup", "export-files", "import-files"]


# -- passwords ----------------------------------------------------------------------------------
@pytest.mark.parametrize("command", [*MAINTENANCE, "run"])
@pytest.mark.parametrize("form", [
    "postgresql://app@127.0.0.1:{port}/db?password=hunter2",
    "postgresql://app:hunter2@127.0.0.1:{port}/db",
    "postgresql://app:hun%74er2@127.0.0.1:{port}/db?sslmode=disable",
    "host=127.0.0.1 port={port} user=app password=hunter2",
])
def test_no_form_of_a_dsn_password_reaches_any_output(capsys, tmp_path, command, form) -> None:
    dsn = form.format(port=_closed_port())
    argv = [*_dir_args(command, tmp_path), "--dsn", dsn]
    if command == "run":
        argv += ["--out", str(tmp_path / "run"), "--suite", "property"]
    code, text = _cli(capsys, "-v", *argv)
    assert code == 2 and "hint:" in text and "Traceback" not in text
    assert SECRET not in text and "hun%74er2" not in text
    written = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file())
    assert SECRET not in written
    if command == "run" and "://" in dsn:
        assert "connecting to PostgreSQL at" in text and "starting PostgreSQL" not in text
        assert json.loads((tmp_path / "run" / "report.json").read_text())["run"]["status"] \
            == "error"


def test_pgpassword_never_reaches_output(capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PGPASSWORD", "pg-env-secret")
    code, text = _cli(capsys, "health", "--dsn",
                      f"postgresql://app@127.0.0.1:{_closed_port()}/db?password=pg-env-secret")
    assert code == 2 and "pg-env-secret" not in text


# -- hostile arguments: refused before any I/O --------------------------------------------------
HOSTILE = [
    (["cleanup", "--retention-days", "inf"], "retention must be"),
    (["cleanup", "--retention-days", "1e10"], "retention must be"),
    (["cleanup", "--retention-days", "-1"], "retention must be"),
    (["cleanup", "--retention-days", "nan"], "retention must be"),
    (["cleanup", "--retention-days", "soon"], "invalid float value"),
    (["cleanup", "--batch-size", "0"], "batch size"),
    (["cleanup", "--batch-size", "99999999999"], "batch size"),
    (["cleanup", "--max-delete", "-1"], "max-delete"),
    (["cleanup", "--type-policy", "pre-key=drop"], "must be delete or keep"),
    (["cleanup", "--type-policy", "prekey=delete"], "unknown key type"),
    (["health", "--samples", "0"], "samples must be"),
    (["health", "--samples", "10000000"], "samples must be"),
    (["health", "--retention-days", "inf"], "retention must be"),
    (["health", "--company", "a' OR '1'='1"], "invalid company id"),
    (["health", "--company", "x" * 51], "invalid company id"),
    (["export-files", "{tmp}/o", "--company", "../etc"], "invalid company id"),
    (["export-files", "/etc/passwd/x", "--company", "acme"], "is not a folder"),
    (["import-files", "{tmp}/missing", "--company", "acme"], "is not a folder"),
    (["import-files", "{tmp}", "--company", ""], "invalid company id"),
    (["pg", "status", "--name", "../../etc"], "invalid server name"),
    (["pg", "down", "--name", ""], "invalid server name"),
    (["run", "--gate", "bench-bulk-min-ratio=inf"], "gate"),
    (["run", "--gate", "nope=1"], "unknown gate"),
    (["run", "--scenario", "nope", "--suite", "chaos"], "unknown chaos scenario"),
    (["run", "--pytest-args", "'unclosed"], "--pytest-args"),
    (["run", "--target", "no_such_module:factory"], "no_such_module"),
]


@pytest.mark.parametrize(("argv", "words"), HOSTILE, ids=[" ".join(a) for a, _ in HOSTILE])
def test_hostile_arguments_exit_2_without_traceback_before_connecting(
        capsys, tmp_path, argv, words) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    # a DSN nobody listens on: had the command connected first, it would say "refused"
    dsn = ["--dsn", f"postgresql://u:{SECRET}@127.0.0.1:{_closed_port()}/db"] \
        if argv[0] not in ("pg", "run") else []
    out = ["--out", str(tmp_path / "run")] if argv[0] == "run" else []
    code, text = _cli(capsys, *argv, *dsn, *out)
    assert code == 2, text
    assert words in text and "refused" not in text and "Traceback" not in text
    assert SECRET not in text
    assert not (tmp_path / "run").exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("command", [*MAINTENANCE, "run"])
def test_port_99999_is_a_tool_error_for_every_command(capsys, tmp_path, command) -> None:
    argv = [*_dir_args(command, tmp_path), "--dsn", f"postgresql://u:{SECRET}@h:99999/db"]
    if command == "run":
        argv += ["--out", str(tmp_path / "run")]
    code, text = _cli(capsys, *argv)
    assert code == 2 and "port '99999'" in text and "hint:" in text and SECRET not in text
    assert not (tmp_path / "run").exists()  # no empty run folder left behind


# -- option order, help ------------------------------------------------------------------------
def test_verbose_is_accepted_before_and_after_the_command() -> None:
    parser = build_parser()
    assert parser.parse_args(["-v", "cleanup"]).verbose == 1
    assert parser.parse_args(["cleanup", "-v"]).verbose == 1
    assert parser.parse_args(["cleanup", "-vv"]).verbose == 2
    assert parser.parse_args(["pg", "status", "-v"]).verbose == 1
    assert parser.parse_args(["health"]).verbose == 0


def test_test_help_is_ours_and_says_how_to_reach_pytests(capsys) -> None:
    code, text = _cli(capsys, "test", "--help")
    assert code == 0 and "usage: authstate-harness test" in text
    assert "test -- --help" in text


# -- output edges ------------------------------------------------------------------------------
async def _seed(dsn: str) -> None:
    store = await PostgresAuthStore.open(dsn)
    try:
        await store.write_creds("acme", init_auth_creds())
        await store.set_keys("acme", {"session": {"1.0": {"v": 1}}})
    finally:
        await store.close()


def test_a_closed_pipe_is_quiet_and_keeps_the_commands_exit_code(pg_dsn) -> None:
    asyncio.run(_seed(pg_dsn))
    env = {**os.environ, "AUTHSTATE_DSN": pg_dsn}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "health", "--samples", "1"],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.close()  # `| head -0`: the reader is gone before anything is written
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err  # health's own verdict (ok), not 1 for EPIPE
    assert b"BrokenPipe" not in err and b"Traceback" not in err


def test_export_into_a_place_that_cannot_hold_a_folder_is_a_tool_error(pg_dsn, capsys) -> None:
    asyncio.run(_seed(pg_dsn))
    code, text = _cli(capsys, "export-files", "/proc/authstate-harness-x", "--company", "acme",
                      "--dsn", pg_dsn)
    assert code == 2 and "cannot write the export folder" in text and "hint:" in text
    assert "Traceback" not in text and "bug" not in text


def test_origin_schema_health_works_and_cleanup_names_the_column(pg_dsn, capsys) -> None:
    async def origin() -> None:
        conn = await asyncpg.connect(pg_dsn)
        try:
            await conn.execute(
                "CREATE TABLE whatsapp_auth (company_id text PRIMARY KEY, creds jsonb);"
                "CREATE TABLE whatsapp_keys (company_id text, key_type text, key_id text, "
                "value jsonb, PRIMARY KEY (company_id, key_type, key_id));"
                "INSERT INTO whatsapp_auth VALUES ('acme', '{}');"
                "INSERT INTO whatsapp_keys VALUES ('acme', 'session', '1.0', '{}')")
        finally:
            await conn.close()

    asyncio.run(origin())
    code, text = _cli(capsys, "health", "--dsn", pg_dsn, "--samples", "1")
    assert code == 0 and "ADD COLUMN updated_at" in text and "unreachable" not in text
    code, text = _cli(capsys, "cleanup", "--dsn", pg_dsn, "--dry-run")
    assert code == 2 and "ADD COLUMN expires_at" in text and "unreachable" not in text


def test_import_ignores_what_export_overwrite_leaves_and_ds_store(pg_dsn, tmp_path,
                                                                 capsys) -> None:
    asyncio.run(_seed(pg_dsn))
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / ".DS_Store").write_bytes(b"\x00\x01")
    code, text = _cli(capsys, "export-files", str(folder), "--company", "acme", "--dsn", pg_dsn,
                      "--overwrite")
    assert code == 0 and "left 2 non-auth-state file(s)" in text
    code, text = _cli(capsys, "import-files", str(folder), "--company", "beta", "--dsn", pg_dsn)
    assert code == 0 and "ignored 2 file(s)" in text


def test_import_with_no_migrate_creates_nothing(pg_dsn, tmp_path, capsys) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "creds.json").write_text(json.dumps(
        {"noiseKey": 1, "signedIdentityKey": 1, "signedPreKey": 1, "registrationId": 1}))
    code, text = _cli(capsys, "import-files", str(folder), "--company", "acme", "--dsn", pg_dsn,
                      "--no-migrate")
    assert code == 2 and "hint:" in text and "Traceback" not in text

    async def tables() -> object:
        conn = await asyncpg.connect(pg_dsn)
        try:
            return await conn.fetchval("SELECT to_regclass('whatsapp_keys')")
        finally:
            await conn.close()

    assert asyncio.run(tables()) is None
