"""The CLI as a newcomer meets it: a typo gets its command's usage and the option it meant, a
profile's fixed suite set is not silently widened, -vv shows the traceback of a tool error."""

from __future__ import annotations

import socket

import pytest

from harness.cli import main


@pytest.fixture(autouse=True)
def no_env_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTHSTATE_DSN", raising=False)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as done:
        code = int(done.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_a_mistyped_option_gets_its_commands_usage_and_a_did_you_mean(capsys) -> None:
    code, _, err = _cli(capsys, "run", "--profle", "quick")
    assert code == 2
    assert "usage: authstate-harness run " in err  # run's usage, not the top-level one
    assert "unrecognized arguments: --profle quick (did you mean --profile?)" in err
    code, _, err = _cli(capsys, "pg", "up", "--nme", "x")
    assert code == 2 and "usage: authstate-harness pg up" in err and "--name?" in err


def test_a_suite_outside_predeploys_fixed_set_is_refused_before_anything_starts(
        capsys, tmp_path) -> None:
    code, _, err = _cli(capsys, "run", "--profile", "predeploy", "--suite", "property",
                        "--out", str(tmp_path / "run"))
    text = " ".join(err.split())
    assert code == 2 and "the predeploy profile runs a fixed set of suites (chaos, load)" in text
    assert "hint:" in text and "--profile ci --suite property" in text
    assert not (tmp_path / "run").exists()


def test_vv_shows_the_traceback_of_a_refused_connection(capsys) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dsn = f"postgresql://app:hunter2@127.0.0.1:{port}/db"
    code, _, err = _cli(capsys, "health", "--dsn", dsn)
    assert code == 2 and "Traceback" not in err and "hint:" in err
    code, _, err = _cli(capsys, "-vv", "health", "--dsn", dsn)
    assert code == 2 and "hint:" in err
    assert "Traceback (most recent call last)" in err
    assert "ConnectionRefusedError" in err and "hunter2" not in err


def test_load_help_says_what_no_bridge_bench_does_to_its_gate(capsys) -> None:
    code, out, _ = _cli(capsys, "load", "--help")
    text = " ".join(out.split())
    assert code == 0 and "--no-bridge-bench" in text
    assert "load-bridge-min-ratio is then 'not applicable', not missed" in text
