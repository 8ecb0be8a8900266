"""The packaging tests' one build: sdist and wheel made once per session from a copy of the
source files, shared by the wheel test and the pipx / uv test."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from packaging_support import ROOT, clean_env, log_time

SKIP_DIRS = {".git", ".venv", "build", "dist", "reports", "__pycache__", "node_modules",
             ".hypothesis", ".pytest_cache", ".ruff_cache", ".tox", ".benchmarks"}


def _source_files() -> list[str]:
    """The files a release is built from: git's tracked files (a fresh clone's), else the tree
    without caches and build output."""
    if (ROOT / ".git").exists() and shutil.which("git"):
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                                check=True).stdout.decode()
        return [p for p in listed.split("\0") if p and (ROOT / p).is_file()]
    return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()
            and not SKIP_DIRS & set(p.relative_to(ROOT).parts) and p.suffix != ".pyc"]


@pytest.fixture(scope="session")
def sources() -> list[str]:
    return _source_files()


@pytest.fixture(scope="session")
def dist(tmp_path_factory: pytest.TempPathFactory, sources: list[str]) -> Path:
    """sdist + wheel (`python -m build`: the wheel is built from the sdist, so a file the sdist
    lacks is missing from the wheel too), from a copy: nothing is written into the clone."""
    started = time.monotonic()
    tree = tmp_path_factory.mktemp("source")
    for name in sources:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(tree)],
                          capture_output=True, text=True, timeout=600, check=False,
                          env=clean_env())
    assert done.returncode == 0, f"python -m build failed:\n{done.stdout[-3000:]}\n" \
                                 f"{done.stderr[-3000:]}"
    log_time("sdist + wheel built", started)
    return out
