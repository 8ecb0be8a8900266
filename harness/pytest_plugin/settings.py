"""What the plugin was told: `--authstate-*` options over `[tool.authstate-harness]` of the
project's pyproject.toml over the environment (AUTHSTATE_DSN).

Read only when a fixture or an option of the plugin is used: a project that never asks pays
nothing, and a malformed table only matters to a project that uses the harness.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

KEY = pytest.StashKey["PluginSettings"]()


@dataclass(frozen=True)
class PluginSettings:
    target: str | None  # a target spec, relative paths already anchored
    target_source: str  # "--authstate-target" | "pyproject.toml" | "not set"
    dsn: str | None  # an existing PostgreSQL (never read from a file: it may hold a password)
    pyproject: Path | None
    suites: tuple[str, ...]  # --authstate-suite
    scenarios: tuple[str, ...]  # --authstate-scenario
    reports: Path  # where --authstate-suite runs write their report folders
    deadline_s: float  # the harness's deadline for a call under a fault (chaos-deadline-max-s)

    def require_target(self) -> str:
        if self.target is None:
            raise pytest.UsageError(
                "no store to test: pass --authstate-target SPEC (e.g. node:src/auth-state.js or "
                "mypkg.store:open_store), or set target = \"...\" under [tool.authstate-harness] "
                "in pyproject.toml")
        return self.target


def project_pyproject(config: pytest.Config) -> Path | None:
    """The project's pyproject.toml: pytest's own config file if it is one, else the rootdir's."""
    if config.inipath is not None and config.inipath.name == "pyproject.toml":
        return config.inipath
    candidate = config.rootpath / "pyproject.toml"
    return candidate if candidate.is_file() else None


def anchor_spec(spec: str, base: Path) -> str:
    """A target spec whose file path is relative made absolute against `base` (the directory of
    the file that named it); module paths and built-in names are left alone."""
    if spec.startswith("node:"):
        where, sep, export = spec[len("node:"):].partition("#")
        path = Path(where.strip()).expanduser()
        return spec if path.is_absolute() else f"node:{base / path}{sep}{export}"
    where, sep, attr = spec.rpartition(":")
    if sep and (where.endswith(".py") or "/" in where or "\\" in where):
        path = Path(where).expanduser()
        return spec if path.is_absolute() else f"{base / path}:{attr}"
    return spec


def read_settings(config: pytest.Config) -> PluginSettings:
    """Resolve (once per session) what the options and the project's pyproject say."""
    cached = config.stash.get(KEY, None)
    if cached is not None:
        return cached
    from harness.config import load_config
    from harness.errors import ConfigError

    pyproject = project_pyproject(config)
    try:
        project = load_config(pyproject)  # the defaults when there is no pyproject.toml
    except ConfigError as exc:
        raise pytest.UsageError(f"{exc.message}\n  hint: {exc.hint}") from None
    option = config.getoption("--authstate-target")
    if option:
        target, source = anchor_spec(option, Path.cwd()), "--authstate-target"
    elif project.target and pyproject is not None:
        target, source = anchor_spec(project.target, pyproject.parent), pyproject.name
    else:
        target, source = None, "not set"
    reports = config.getoption("--authstate-reports")
    settings = PluginSettings(
        target=target, target_source=source,
        dsn=config.getoption("--authstate-dsn") or os.environ.get("AUTHSTATE_DSN") or None,
        pyproject=pyproject, suites=tuple(config.getoption("--authstate-suite")),
        scenarios=tuple(config.getoption("--authstate-scenario")),
        reports=Path(reports).resolve() if reports else config.rootpath / "reports",
        deadline_s=project.gate("chaos-deadline-max-s"))
    config.stash[KEY] = settings
    return settings


def used(config: pytest.Config) -> bool:
    """Whether any --authstate-* option was given on the command line."""
    return any(config.getoption(name) for name in (
        "--authstate-target", "--authstate-dsn", "--authstate-suite", "--authstate-scenario",
        "--authstate-reports"))
