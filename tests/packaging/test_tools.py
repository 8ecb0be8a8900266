"""`uvx --from <wheel>` and `pipx run --spec <wheel>`: the built wheel as an isolated tool, run
from an empty directory -- the version says which tool made its environment, and a short
chaos run against the example store (shipped inside the package: `node:examples/...` resolves
there) exits 0 with its report in the current directory.

Each tool is used only when it is on PATH (this repository's CI machine has neither: the
tests skip and say so); `pip install uv pipx` provides both. They install the wheel's
dependencies from PyPI into their own caches.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging_support import TIMING_GATES, clean_env, one, require_node_and_npm

from harness import __version__

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

TOOLS = {
    # tool: (argv before the command, the environment install_info reports)
    "uvx": (["uvx", "--from", "{wheel}"], "uv tool run"),
    "pipx": (["pipx", "run", "--spec", "{wheel}"], "pipx"),
}


def _tool(name: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(shutil.which(name) is None,
                              reason=f"{name} is not on PATH (`pip install uv pipx` gives both)")


def _argv(name: str, wheel: Path, *args: str) -> list[str]:
    prefix, _ = TOOLS[name]
    return [p.format(wheel=wheel) for p in prefix] + ["authstate-harness", *args]


@pytest.mark.parametrize("name", [pytest.param(n, marks=_tool(n)) for n in TOOLS])
def test_the_wheel_runs_as_an_isolated_tool(name: str, dist: Path, tmp_path: Path) -> None:
    wheel = one(dist, "*.whl")
    version = subprocess.run(_argv(name, wheel, "--version"), cwd=tmp_path, env=clean_env(),
                             capture_output=True, text=True, timeout=600, check=False)
    assert version.returncode == 0, version.stdout + version.stderr
    assert f"authstate-harness {__version__} (wheel," in version.stdout
    assert f", {TOOLS[name][1]};" in version.stdout, version.stdout

    require_node_and_npm()
    (tmp_path / "pyproject.toml").write_text(TIMING_GATES)
    done = subprocess.run(
        _argv(name, wheel, "run", "--suite", "chaos", "--scenario", "sever", "--plain",
              "--target", "node:examples/node-store/index.js"),
        cwd=tmp_path, env=clean_env(CI="1"), capture_output=True, text=True, timeout=900,
        check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    report = json.loads(one(tmp_path / "reports", "*/report.json").read_text())
    assert report["environment"]["harness"]["install"]["environment"] == TOOLS[name][1]
    assert report["chaos"]["scenarios"][0]["lost_writes"] == 0
