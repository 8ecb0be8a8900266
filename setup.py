"""Build hook: a wheel carries the suites inside the package, as `harness/_suites/`.

The repository keeps conftest.py, fixtures/, scenarios/, examples/ and pyproject.toml at the top
level: that is how a clone runs (`python3 -m harness run`), and every `from fixtures...` import
of the suites relies on it. A wheel must not put `fixtures` or `scenarios` at the top of
site-packages (`fixtures` is another project's name on PyPI), so build_py copies them, whole
and by directory, into `harness/_suites/` of the build directory (never the source tree).
`harness.paths.suite_root()` finds that copy; the child pytest of `authstate-harness run` puts
it first on sys.path (the conftest's directory), so the suites' imports work unchanged.
Everything else is in pyproject.toml and MANIFEST.in.
"""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
# One list, read from the module that looks the files up at run time (stdlib only).
SUITE_FILES: tuple[str, ...] = runpy.run_path(str(HERE / "harness" / "paths.py"))["SUITE_FILES"]
SHIPPED = ("harness", "_suites")
SKIP = shutil.ignore_patterns("__pycache__", "*.py[cod]", "node_modules", ".hypothesis",
                              ".pytest_cache", ".DS_Store")


class BuildPyWithSuites(build_py):
    """build_py, then the suites into build_lib/harness/_suites/."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:  # an editable install runs from the clone, suites and all
            return
        target = Path(self.build_lib).joinpath(*SHIPPED)
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for name in SUITE_FILES:
            source = HERE / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=SKIP)
            elif source.is_file():
                shutil.copy2(source, target / name)
            else:
                raise SystemExit(f"setup.py: {source} is missing; a wheel without it could not "
                                 "run its suites (build from a clone or a complete sdist)")


setup(cmdclass={"build_py": BuildPyWithSuites})
