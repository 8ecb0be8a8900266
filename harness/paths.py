"""Where things are, in a clone and in an installed copy (stdlib only: the first-use bootstrap
imports it before any dependency).

Two places matter to a run:
- the *suite root*: `conftest.py`, `fixtures/`, `scenarios/`, `examples/` and the pytest
  settings in `pyproject.toml`. In a clone that is the repository root, beside the `harness`
  package. An installed wheel carries a copy of them inside the package, in `harness/_suites/`
  (copied there at build time by setup.py), so nothing but `harness` lands in site-packages.
- the *project directory*: where `reports/` go, whose `pyproject.toml` holds the gates and
  relative target paths start from. The clone when working inside it (as ever), otherwise the
  current directory: `authstate-harness run` in a team's repository writes `reports/` there.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_SUITES = PACKAGE_DIR / "_suites"
SUITE_FILES = ("conftest.py", "pyproject.toml", "fixtures", "scenarios", "examples")
"""What a suite root holds (and what setup.py copies into `harness/_suites/`)."""


def import_root() -> Path:
    """The directory holding the `harness` package: what a child process needs on PYTHONPATH
    to import this very copy of it."""
    return PACKAGE_DIR.parent


def _is_suite_root(path: Path) -> bool:
    return (path / "conftest.py").is_file() and (path / "scenarios").is_dir()


def checkout_root() -> Path | None:
    """The clone this `harness` runs from (editable install or plain source tree), or None when
    it is an installed copy."""
    root = import_root()
    return root if _is_suite_root(root) and (root / "pyproject.toml").is_file() else None


def suite_root() -> Path:
    """The directory holding conftest.py, fixtures/, scenarios/ and examples/: the clone, or the
    copy shipped inside the installed package."""
    return checkout_root() or SHIPPED_SUITES


def repo_root() -> Path:
    """The suite root (in a clone: the repository root). Relative paths of the harness's own
    files (scenarios/..., examples/...) start here, installed or not."""
    return suite_root()


def project_dir(cwd: Path | None = None) -> Path:
    """Where `reports/` and the gates' `pyproject.toml` are: the clone when `cwd` is inside it,
    else `cwd` itself (a team's repository, with the harness installed)."""
    here = (cwd or Path.cwd()).resolve()
    root = checkout_root()
    if root is not None and here.is_relative_to(root):
        return root
    return here
