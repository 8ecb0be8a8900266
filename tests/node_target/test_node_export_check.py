"""A `node:` spec is checked as fast as a Python one: a missing `#export`, a syntax error or a
module node cannot find stops `run` and `load` before the run folder, PostgreSQL or a sidecar
exist (it used to surface after ~22 s of setup, in the first test)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from node_bridge_support import MODULES, PROBE, require_node  # type: ignore[import-not-found]
from rich.console import Console

from harness.config import profile
from harness.errors import ConfigError
from harness.runner.job import MainJob, RunOptions, check_target
from harness.runner.suites import select_suites

CHECKS = MODULES / "export_check"


def _job(tmp_path: Path, target: str) -> MainJob:
    opts = RunOptions(profile=profile("quick"), suites=select_suites(["property"]),
                      out_dir=tmp_path / "run", live=False, target=target,
                      argv=["authstate-harness", "run"])
    return MainJob(opts, Console(file=io.StringIO()))


def test_a_missing_export_stops_the_run_before_the_run_folder_exists(tmp_path: Path) -> None:
    require_node()
    with pytest.raises(ConfigError) as err:
        _job(tmp_path, f"node:{PROBE}#useMissing")
    assert "export useMissing of" in err.value.message and "is missing" in err.value.message
    assert "useNamedProbe" in (err.value.hint or "")  # what it does export
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="a number, not a function"):
        check_target(f"node:{PROBE}#notAFunction")


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    require_node()
    with pytest.raises(ConfigError, match="SyntaxError") as err:
        _job(tmp_path, f"node:{CHECKS / 'syntax_error.mjs'}")
    assert "syntax_error.mjs:" in err.value.message and err.value.hint
    assert not (tmp_path / "run").exists()


def test_good_specs_pass_whatever_form_the_export_takes() -> None:
    require_node()
    assert check_target(f"node:{PROBE}") == f"node:{PROBE}"
    check_target(f"node:{PROBE}#useNamedProbe")
    check_target(f"node:{MODULES / 'commonjs_store.cjs'}#useCjsAuthState")


def test_a_module_that_needs_the_database_to_import_is_left_to_the_run() -> None:
    """Its import fails here (no database yet: the check's DATABASE_URL never resolves), which
    says nothing about the spec: not refused."""
    require_node()
    spec = f"node:{CHECKS / 'connects_on_import.mjs'}"
    assert check_target(spec) == spec
