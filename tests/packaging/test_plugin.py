"""The pytest plugin in this environment (the clone's editable install registers its entry
point): listed options, a project that does not use it unchanged, settings from the options
and pyproject.toml, `--authstate-suite` items, and no double registration inside the clone.

Each case is a real pytest run in a scratch project (a child process); none provisions
PostgreSQL, so the whole file takes seconds. The plugin's fixtures doing real work (sever
PostgreSQL under the example store) are shown from an installed wheel in test_wheel.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from packaging_support import (
    OPTIONS,
    PLAIN_PROJECT,
    PLUGIN,
    ROOT,
    normalized,
    run_pytest,
    write_project,
)

from harness.pytest_plugin.settings import anchor_spec

PYTHON = sys.executable


def test_pytest_help_lists_every_option(tmp_path: Path) -> None:
    done = run_pytest(PYTHON, tmp_path, "--help")
    assert done.returncode == 0, done.stderr
    assert "authstate-harness:" in done.stdout
    for option in OPTIONS:
        assert option in done.stdout, option


def test_a_project_that_uses_nothing_runs_exactly_as_without_the_plugin(tmp_path: Path) -> None:
    project = write_project(tmp_path / "plain", PLAIN_PROJECT)
    with_plugin = run_pytest(PYTHON, project, "-rA")
    used = json.loads((project / "modules.json").read_text())
    without = run_pytest(PYTHON, project, "-rA", "-p", f"no:{PLUGIN}")
    assert with_plugin.returncode == without.returncode == 1  # test_fail fails, as it should
    assert "1 failed, 4 passed, 1 skipped" in with_plugin.stdout
    assert normalized(with_plugin.stdout) == normalized(without.stdout)
    assert normalized(with_plugin.stderr) == normalized(without.stderr)
    # loading the plugin imported nothing heavy: no database driver, no Locust/gevent
    assert set(used) <= {"harness", PLUGIN, f"{PLUGIN}.settings"}, used
    assert "harness" not in json.loads((project / "modules.json").read_text())


def test_naming_the_plugin_again_does_not_register_it_twice(tmp_path: Path) -> None:
    """The entry point's name is the module's: `-p harness.pytest_plugin` (or a conftest's
    pytest_plugins) finds it already registered instead of failing."""
    project = write_project(tmp_path / "plain", PLAIN_PROJECT)
    again = run_pytest(PYTHON, project, "-p", PLUGIN)
    assert again.returncode == 1 and "1 failed, 4 passed, 1 skipped" in again.stdout, \
        again.stdout + again.stderr


SETTINGS_TEST = '''
def test_settings(authstate_settings, pytestconfig):
    print("TARGET", authstate_settings.target, authstate_settings.target_source)
'''


def test_target_from_pyproject_is_anchored_to_its_directory(tmp_path: Path) -> None:
    project = write_project(tmp_path / "team", {
        "test_settings.py": SETTINGS_TEST,
        "pyproject.toml": '[tool.authstate-harness]\ntarget = "node:src/auth-state.js"\n'
                          "chaos-lost-writes-max = 0\n"})
    (project / "tests").mkdir()
    done = run_pytest(PYTHON, project, "-s", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"TARGET node:{project}/src/auth-state.js pyproject.toml" in done.stdout
    # the option wins, relative to the current directory
    done = run_pytest(PYTHON, project, "-s", "-q", "--authstate-target", "mypkg.store:open")
    assert "TARGET mypkg.store:open --authstate-target" in done.stdout, done.stdout


def test_a_bad_table_matters_only_to_a_project_that_uses_the_plugin(tmp_path: Path) -> None:
    project = write_project(tmp_path / "team", {
        "test_plain.py": "def test_ok():\n    assert True is not False\n",
        "pyproject.toml": '[tool.authstate-harness]\ntarget = 3\n'})
    assert run_pytest(PYTHON, project, "-q").returncode == 0
    done = run_pytest(PYTHON, project, "-q", "--authstate-dsn", "postgresql://x@127.0.0.1/db")
    assert done.returncode == 4, done.stdout + done.stderr  # usage error, before any test
    assert "target = 3" in done.stderr and "[tool.authstate-harness]" in done.stderr


def test_a_fixture_without_a_target_says_how_to_name_one(tmp_path: Path) -> None:
    project = write_project(tmp_path / "team", {
        "test_target.py": "def test_spec(authstate_target_spec):\n    pass\n"})
    done = run_pytest(PYTHON, project, "-q")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "no store to test: pass --authstate-target SPEC" in done.stdout
    assert "[tool.authstate-harness]" in done.stdout


def test_suites_become_items_that_run_the_main_job(tmp_path: Path) -> None:
    project = write_project(tmp_path / "team", {
        "test_plain.py": "def test_ok():\n    assert 2 > 1\n"})
    listed = run_pytest(PYTHON, project, "--co", "-q", "--authstate-suite", "chaos",
                        "--authstate-suite", "property", "-m", "authstate_suite")
    assert "authstate-harness[property]\nauthstate-harness[chaos]" in listed.stdout, \
        listed.stdout
    assert "1 deselected" in listed.stdout  # -m picks only the suites
    # a run that cannot start fails its item with the run's exit code and message (fast: the
    # bad scenario name stops it before PostgreSQL starts)
    done = run_pytest(PYTHON, project, "-q", "--authstate-suite", "chaos",
                      "--authstate-scenario", "no-such-scenario", timeout=180)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "`authstate-harness run --suite chaos` exited 2" in done.stdout
    assert "unknown chaos scenario(s): no-such-scenario" in done.stdout
    assert "1 failed, 1 passed" in done.stdout


def test_inside_the_clone_plugin_and_suite_fixtures_are_registered_once() -> None:
    """In the clone the editable install's entry point loads the plugin and conftest.py
    registers the suites' fixture modules: both, once each, with `-p` naming the plugin too
    (clone_probe.py is not a test_*.py file: only this test runs it)."""
    done = run_pytest(PYTHON, ROOT, "tests/packaging/clone_probe.py", "-q", "-p", PLUGIN)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_relative_spec_paths_are_anchored_and_others_left_alone() -> None:
    base = Path("/proj")
    assert anchor_spec("node:src/store.js#make", base) == "node:/proj/src/store.js#make"
    assert anchor_spec("node:/abs/store.mjs", base) == "node:/abs/store.mjs"
    assert anchor_spec("tests/store.py:open_store", base) == "/proj/tests/store.py:open_store"
    assert anchor_spec("store.py:open_store", base) == "/proj/store.py:open_store"
    assert anchor_spec("mypkg.store:open_store", base) == "mypkg.store:open_store"
    assert anchor_spec("resilient", base) == "resilient"
