"""Where a run finds its suites and puts its reports, clone or installed, and how the install is
described: pure functions, no PostgreSQL (the installed form end to end is test_wheel.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from packaging_support import ROOT

from harness import __version__, install_info
from harness.config import load_config
from harness.errors import ConfigError
from harness.paths import SHIPPED_SUITES, checkout_root, project_dir, suite_root
from harness.runner.pytest_session import Artifacts, PytestSession
from harness.runner.suites import select_suites


def test_in_the_clone_suites_and_reports_are_the_clone() -> None:
    assert checkout_root() == ROOT and suite_root() == ROOT
    assert project_dir(ROOT / "scenarios" / "chaos") == ROOT  # anywhere inside the clone


def test_outside_the_clone_reports_go_to_the_current_directory(tmp_path: Path) -> None:
    assert project_dir(tmp_path) == tmp_path.resolve()
    assert SHIPPED_SUITES.parent.name == "harness"  # an installed copy's suites: inside it


def _session(root: Path, cwd: Path | None, tmp_path: Path) -> PytestSession:
    return PytestSession(root=root, cwd=cwd, suites=select_suites(["property", "chaos"]),
                         artifacts=Artifacts(tmp_path), pg_dsn="postgresql://x@127.0.0.1/db",
                         hypothesis_profile="dev")


def test_the_child_pytest_of_a_clone_is_unchanged(tmp_path: Path) -> None:
    session = _session(ROOT, ROOT, tmp_path)
    command = session.command()
    assert command[:5] == [sys.executable, "-m", "pytest", "scenarios/property",
                           "scenarios/chaos"]
    assert "--rootdir" not in command and "-P" not in command
    assert session.environment().get("HYPOTHESIS_STORAGE_DIRECTORY") == \
        os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY")  # Hypothesis' default: the clone


def test_an_installed_copy_runs_pinned_to_its_suites_in_the_project(tmp_path: Path) -> None:
    suites, project = tmp_path / "site-packages" / "harness" / "_suites", tmp_path / "team"
    session = _session(suites, project, tmp_path)
    command = session.command()
    assert command[:3] == [sys.executable, "-P", "-m"]  # the team's folders never shadow ours
    assert command[4:6] == [str(suites / "scenarios/property"), str(suites / "scenarios/chaos")]
    assert command[command.index("--rootdir") + 1] == str(suites)
    assert command[command.index("-c") + 1] == str(suites / "pyproject.toml")
    # what pytest-benchmark and Hypothesis keep goes under the project's reports/
    assert command[command.index("--benchmark-storage") + 1] == \
        f"file://{project / 'reports' / '.benchmarks'}"
    env = session.environment()
    assert env["PYTHONSAFEPATH"] == "1"  # and so for the processes the suites start
    if "HYPOTHESIS_STORAGE_DIRECTORY" not in os.environ:  # a user's own choice is kept
        assert env["HYPOTHESIS_STORAGE_DIRECTORY"] == str(project / "reports" / ".hypothesis")


@pytest.mark.parametrize(("direct", "kind", "source"), [
    (None, "index", None),
    ({"url": "file:///tmp/d/authstate_harness-0.1.0-py3-none-any.whl", "archive_info": {}},
     "wheel", "authstate_harness-0.1.0-py3-none-any.whl"),
    ({"url": "file:///tmp/d/authstate_harness-0.1.0.tar.gz", "archive_info": {}},
     "sdist", "authstate_harness-0.1.0.tar.gz"),
    ({"url": "https://user:token@git.example/authstate-harness.git",
      "vcs_info": {"vcs": "git", "commit_id": "abc"}},
     "vcs", "https://git.example/authstate-harness.git"),
    ({"url": "file:///src/authstate-harness", "dir_info": {}}, "directory", "authstate-harness"),
])
def test_install_kind_from_the_distributions_own_record(
        direct: dict[str, object] | None, kind: str, source: str | None) -> None:
    assert install_info._kind(direct) == (kind, source)


@pytest.mark.parametrize(("prefix", "expected"), [
    ("/root/.local/share/pipx/venvs/authstate-harness", "pipx"),
    ("/root/.cache/pipx/80ea294a140a2f4", "pipx"),
    ("/root/.local/share/uv/tools/authstate-harness", "uv tool"),
    ("/root/.cache/uv/archive-v0/ccKzkrL4QC3moexk", "uv tool run"),
    ("/srv/app/.venv", None),
])
def test_tool_environments_are_recognised(monkeypatch: pytest.MonkeyPatch, prefix: str,
                                          expected: str | None) -> None:
    monkeypatch.setattr(sys, "prefix", prefix)
    assert install_info._tool_environment() == expected


def test_the_clone_says_it_is_one() -> None:
    info = install_info.install_info()
    assert info["kind"] == "clone"
    assert install_info.describe().startswith(f"{__version__} (clone")


def test_the_version_has_one_source() -> None:
    """pyproject.toml reads the version from harness/__init__.py, and writes none itself."""
    text = (ROOT / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in text and 'attr = "harness.__version__"' in text
    assert "\nversion =" not in text.split("[project.optional-dependencies]")[0]


def test_pyproject_names_the_target_once(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.authstate-harness]\ntarget = "node:src/auth-state.js"\n'
                         "chaos-rto-p95-max-s = 2\n")
    config = load_config(pyproject)
    assert config.target == "node:src/auth-state.js"
    assert config.gates["chaos-rto-p95-max-s"] == 2 and "target" not in config.gates
    pyproject.write_text("[tool.authstate-harness]\ntarget = 3\n")
    with pytest.raises(ConfigError, match=r"target = 3 .* is not a non-empty string"):
        load_config(pyproject)
