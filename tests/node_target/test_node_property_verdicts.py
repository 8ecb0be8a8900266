"""What a Node.js store does in the property suite is a verdict about it, never a harness error.

- modules/passthrough_store lets node-postgres' `22P05` (a NUL in a string) out of keys.set and
  saveCreds, writing nothing, and refuses an id with a plain `TypeError('invalid company id
  null')`: a correct store. `run --suite property` passes it (it exited 2 when a store's throw
  was taken for the harness failing, and 1 on the missing `A-Z` in the message).
- modules/crash_on_write.mjs kills its own process on the first keys.set: the test fails naming
  the crash, with the module's last output, and no harness error is recorded (the run exits 1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from node_bridge_support import require_node

from harness.authstate.foreign_errors import error_kind
from harness.infra.postgres import PostgresServer
from harness.node_target.errors import NodeUnavailable
from harness.paths import repo_root
from harness.targets import TargetSpec, resolve_target

PASSTHROUGH = "node:tests/node_target/modules/passthrough_store/index.mjs"
CRASH_ON_WRITE = "node:tests/node_target/modules/crash_on_write.mjs"

pytestmark = [pytest.mark.slow]


def _node_spec(spec: str) -> TargetSpec:
    require_node()
    try:
        return resolve_target(spec)  # installs the module's npm dependencies on first use
    except NodeUnavailable as exc:
        pytest.skip(f"{exc.message}. To enable: {exc.hint}")


async def test_the_passthrough_store_refuses_a_nul_with_node_postgres_own_error(
        pg_dsn: str, tmp_path: Path) -> None:
    """The premise of the CLI test below: the module really lets 22P05 through, unchanged."""
    target = await _node_spec(PASSTHROUGH).open(pg_dsn, cache_dir=tmp_path)
    try:
        state = await target.load("acme")
        with pytest.raises(Exception) as err:
            await state.keys.set({"session": {"a.0": {"note": "x\x00y"}}})
        assert getattr(err.value, "js_code", None) == "22P05"
        assert error_kind(err.value) == "refusal"
        with pytest.raises(TypeError) as refused:
            await target.load(None)  # type: ignore[arg-type]
        assert refused.value.message == "TypeError: invalid company id null"  # no "A-Z"
    finally:
        await target.close()


def test_cli_property_run_on_a_store_letting_22P05_through_is_not_a_harness_error(
        tmp_path: Path) -> None:
    _node_spec(PASSTHROUGH)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--suite", "property", "--target", PASSTHROUGH,
         "--pytest-args", "-k 'unstorable or invalid_company_ids'", "--out", str(out),
         "--plain"], cwd=repo_root(), env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["error"] is None
    assert [s["counts"]["passed"] for s in report["suites"]] == [2]


def test_a_node_store_crashing_in_a_property_test_fails_it_naming_the_crash(
        pg_server: PostgresServer, tmp_path: Path) -> None:
    _node_spec(CRASH_ON_WRITE)
    events = tmp_path / "events.jsonl"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "scenarios/property/test_store_properties.py::test_every_key_type_round_trips",
         "--target", CRASH_ON_WRITE, "--pg-dsn", pg_server.dsn, "--hypothesis-profile", "small",
         "-p", "harness.report.pytest_events", "--harness-events", str(events)],
        cwd=repo_root(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1, proc.stdout[-4000:] + proc.stderr[-2000:]
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    assert not [e for e in lines if e["event"] == "harness_error"], lines
    failed = [e for e in lines if e["event"] == "result" and e["outcome"] == "failed"]
    assert len(failed) == 1, lines
    message = failed[0]["message"]
    assert "crash: the Node sidecar exited unexpectedly (exit code 3)" in message, message
    assert "crash_on_write: writing is not implemented, giving up" in message, message
