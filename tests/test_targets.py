"""Targets: every spec form resolves and opens a working store; every bad spec is a ConfigError
with a hint; a factory returning something that is not a store is refused naming what it lacks;
the `target` fixture closes the store after a failing test and records what was tested."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from harness.errors import ConfigError
from harness.paths import repo_root
from harness.targets import FACTORY_SIGNATURE, SPEC_FORMS, TargetSpec, resolve_target, settle

DATA = Path(__file__).parent / "targets_data"
FACTORY_FILE = DATA / "wrapping_factory.py"


async def _round_trip(spec: TargetSpec, dsn: str, cache_dir: Path) -> Any:
    """Open the target, write creds and a key through Baileys' surface, read them back from a
    new load, close. Returns the opened store (closed)."""
    store = await spec.open(dsn, cache_dir=cache_dir)
    try:
        company = "c" + uuid.uuid4().hex[:12]
        state = await store.load(company)
        state.creds = {**state.creds, "registered": True}
        await state.save_creds()
        await state.keys.set({"pre-key": {"1": {"public": b"\x05" * 32, "private": b"\x01" * 32}}})
        assert await settle(store)
        again = await store.load(company)
        assert again.creds["registered"] is True
        assert await again.keys.get("pre-key", ["1", "2"]) == {
            "1": {"public": b"\x05" * 32, "private": b"\x01" * 32}}
    finally:
        await store.close()
    return store


# -- every spec form -----------------------------------------------------------------------------
async def test_reference_resolves_and_opens_a_working_store(pg_dsn: str, tmp_path: Path) -> None:
    spec = resolve_target("reference")
    assert (spec.name, spec.spec) == ("reference", "reference")
    assert "PostgresAuthStore" in spec.description
    await _round_trip(spec, pg_dsn, tmp_path)


async def test_resilient_resolves_and_opens_a_working_store(pg_dsn: str, tmp_path: Path) -> None:
    spec = resolve_target("resilient")
    assert (spec.name, spec.spec) == ("resilient", "resilient")
    assert "ResilientAuthStore" in spec.description
    try:
        from harness.authstate import ResilientAuthStore  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="resilient store cannot be imported") as err:
            await spec.open(pg_dsn, cache_dir=tmp_path)
        assert "--target reference" in (err.value.hint or "")
        pytest.skip("the resilient store is not in this checkout yet: checked the error instead")
    store = await _round_trip(spec, pg_dsn, tmp_path / "cache")
    assert callable(getattr(store, "flush", None)) and callable(getattr(store, "status", None))


async def test_module_path_factory_resolves_and_opens(pg_dsn: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DATA))
    spec = resolve_target("wrapping_factory:open_store")
    assert (spec.name, spec.spec) == ("wrapping_factory:open_store",) * 2
    assert spec.description == "The reference store behind a thin adapter (test fixture data)."
    store = await _round_trip(spec, pg_dsn, tmp_path)
    assert store.closed and store.cache_dir == tmp_path


async def test_a_plain_function_returning_an_awaitable_is_a_factory_too(
        pg_dsn: str, tmp_path: Path) -> None:
    spec = resolve_target(f"{FACTORY_FILE}:open_store_sync")
    assert (await _round_trip(spec, pg_dsn, tmp_path)).closed


@pytest.mark.parametrize("where", ["cwd", "repo root", "absolute"])
async def test_file_factory_resolves_relative_to_cwd_or_repo_root(
        where: str, pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if where == "cwd":
        monkeypatch.chdir(DATA.parent)
        text = "targets_data/wrapping_factory.py:open_store"
    elif where == "repo root":
        monkeypatch.chdir(tmp_path)  # nothing of that name here: found from the repo root
        text = str(FACTORY_FILE.relative_to(repo_root())) + ":open_store"
    else:
        text = f"{FACTORY_FILE}:open_store"
    spec = resolve_target(text)
    assert spec.spec == text and spec.name == "wrapping_factory.py:open_store"
    assert (await _round_trip(spec, pg_dsn, tmp_path / "cache")).closed


def test_files_load_under_unique_module_names(tmp_path: Path) -> None:
    """Two files with the same name stay two modules; one file resolved twice is one module."""
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "store.py").write_text(
            f"async def open_store(dsn, *, cache_dir):\n    return {sub!r}\n")
    a = resolve_target(f"{tmp_path}/a/store.py:open_store")
    b = resolve_target(f"{tmp_path}/b/store.py:open_store")
    assert a.factory.__module__ != b.factory.__module__
    assert sys.modules[a.factory.__module__].__file__ == str(tmp_path / "a" / "store.py")
    assert resolve_target(f"{tmp_path}/a/store.py:open_store").factory is a.factory


# -- bad specs -----------------------------------------------------------------------------------
def _files(tmp_path: Path) -> dict[str, Path]:
    broken = tmp_path / "broken_syntax.py"
    broken.write_text("async def open_store(dsn, *, cache_dir):\n    return (\n\nx = 1\n")
    needs_dep = tmp_path / "needs_dep.py"
    needs_dep.write_text("import no_such_dependency_xyz\n\nasync def open_store(dsn, *, "
                         "cache_dir):\n    pass\n")
    return {"broken": broken, "needs_dep": needs_dep}


BAD_SPECS = [
    # (spec, words in the message, words in the hint)
    ("nonsense", ["unknown target 'nonsense'"], [SPEC_FORMS]),
    ("", ["unknown target ''"], [SPEC_FORMS]),
    ("my_store.py", ["unknown target"], ["my_store.py:open_store", FACTORY_SIGNATURE]),
    (":open_store", ["names no module or file"], [SPEC_FORMS]),
    ("wrapping_factory:", ["names no factory"], [SPEC_FORMS]),
    ("not-a-module:f", ["neither a module path nor a .py file"], [SPEC_FORMS]),
    ("no_such_module_xyz.sub:f", ["no module named 'no_such_module_xyz'"],
     ["importable", "path/to/file.py:factory"]),
    ("missing/store.py:f", ["no such file missing/store.py", "looked for"],
     ["relative to the current directory or the repository root"]),
    ("wrapping_factory:nope", ["has no attribute 'nope'"], ["open_store", "nope(dsn"]),
    ("wrapping_factory:NOT_CALLABLE", ["NOT_CALLABLE is not callable (type int)"],
     [FACTORY_SIGNATURE]),
    ("wrapping_factory:wrong_signature", ["cannot be called as factory(dsn, *, cache_dir=...)"],
     [FACTORY_SIGNATURE]),
    ("{broken}:open_store", ["syntax error in {broken}:2"], ["fix the target's source"]),
    ("{needs_dep}:open_store",
     ["importing the target {needs_dep} failed: ModuleNotFoundError",
      "no_such_dependency_xyz"], ["runpy.run_path"]),
]


@pytest.mark.parametrize(("text", "message", "hint"), BAD_SPECS, ids=[s[0] or "empty"
                                                                      for s in BAD_SPECS])
def test_bad_specs_are_config_errors_with_a_hint(text: str, message: list[str], hint: list[str],
                                                 tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(DATA))
    files = {k: str(v) for k, v in _files(tmp_path).items()}
    with pytest.raises(ConfigError) as err:
        resolve_target(text.format(**files))
    for words in message:
        assert words.format(**files) in err.value.message
    assert err.value.hint
    for words in hint:
        assert words in err.value.hint


def test_a_module_whose_own_import_fails_is_not_called_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The module exists but imports something absent: the error names the real culprit."""
    (tmp_path / "team_store_xyz.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as err:
        resolve_target("team_store_xyz:open_store")
    assert "importing the target team_store_xyz failed" in err.value.message
    assert "no_such_dependency_xyz" in err.value.message
    assert "import team_store_xyz" in (err.value.hint or "")


# -- what the factory returns ----------------------------------------------------------------------
async def test_a_factory_returning_a_non_store_is_refused_naming_the_missing_methods(
        tmp_path: Path) -> None:
    spec = resolve_target(f"{FACTORY_FILE}:returns_a_dict")
    with pytest.raises(ConfigError) as err:
        await spec.open("postgresql://unused", cache_dir=tmp_path)
    assert "returned a dict, which has no load() and no close()" in err.value.message
    assert FACTORY_SIGNATURE in (err.value.hint or "")


async def test_a_store_without_load_is_refused_and_closed(tmp_path: Path) -> None:
    spec = resolve_target(f"{FACTORY_FILE}:returns_only_close")
    with pytest.raises(ConfigError) as err:
        await spec.open("postgresql://unused", cache_dir=tmp_path)
    assert "which has no load()" in err.value.message and "close()" not in err.value.message
    module = sys.modules[spec.factory.__module__]
    assert module.LAST_ONLY_CLOSES[-1].closed


async def test_settle_uses_flush_when_the_target_has_it() -> None:
    class Flushing:
        def __init__(self, result: bool) -> None:
            self.result, self.asked = result, None

        async def flush(self, timeout: float) -> bool:  # noqa: ASYNC109 (the hook's API)
            self.asked = timeout
            return self.result

    done, stuck = Flushing(True), Flushing(False)
    assert await settle(done, within_s=3.0) and done.asked == 3.0
    assert not await settle(stuck)
    assert await settle(object())  # no flush: writes through


# -- the pytest plumbing, in a pytest subprocess ---------------------------------------------------
def _pytest(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=repo_root(), capture_output=True, text=True, timeout=300,
        env={**os.environ, **(env or {})})


def test_target_fixture_closes_the_store_after_a_failing_test(pg_server, tmp_path: Path) -> None:
    events, facts = tmp_path / "target-events", tmp_path / "harness-events.jsonl"
    spec = f"{FACTORY_FILE.relative_to(repo_root())}:open_store"
    proc = _pytest(str(DATA / "closes_after_failure.py"), "--target", spec,
                   "--pg-dsn", pg_server.dsn, "-p", "harness.report.pytest_events",
                   "--harness-events", str(facts),
                   env={"AUTHSTATE_TARGET_EVENTS": str(events)})
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "deliberate failure" in proc.stdout
    assert events.read_text().split() == ["opened", "closed"]
    recorded = [json.loads(line) for line in facts.read_text().splitlines()]
    target = [e["value"] for e in recorded if e["event"] == "fact" and e["key"] == "target"]
    assert target[-1] == {"suites": {
        "name": "wrapping_factory.py:open_store", "spec": spec,
        "description": "The reference store behind a thin adapter (test fixture data).",
        "selected_by": "--target"}}


def test_a_bad_target_option_stops_the_session_with_the_hint() -> None:
    proc = _pytest(str(DATA / "closes_after_failure.py"), "--target", "nonsense")
    assert proc.returncode == 4, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "--target nonsense: unknown target 'nonsense'" in proc.stderr
    assert f"hint: use {SPEC_FORMS}" in proc.stderr


def test_the_property_suite_catches_a_target_that_keeps_keys_in_memory(pg_server) -> None:
    """Negative control: round trips through one instance pass, but a second instance reads
    from PostgreSQL and finds nothing."""
    proc = _pytest("scenarios/property/test_store_properties.py::test_every_key_type_round_trips",
                   "--target", f"{FACTORY_FILE}:open_forgetful_store", "--pg-dsn", pg_server.dsn,
                   "--hypothesis-profile", "dev")
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "1 failed" in proc.stdout
    assert "assert {} == {" in proc.stdout  # the second instance found nothing
