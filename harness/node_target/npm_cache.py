"""A module's npm dependencies, installed on first use into a cache outside the repository.

A team's store in its own checkout normally has `node_modules` already (`npm ci` in its CI):
then nothing is installed. When the dependencies listed in the package.json nearest to the module
cannot be found in a `node_modules` beside it or above it (the harness's examples, which commit
no `node_modules`), they are installed once into
`$AUTHSTATE_HARNESS_NODE_CACHE/deps-<package>-<hash of package.json + package-lock.json>`
(default `${XDG_CACHE_HOME:-~/.cache}/authstate-harness/node/`, the cache Baileys' interop
install uses), with `npm ci` when there is a lockfile, in a temporary directory renamed into
place (never half-visible), under a file lock (parallel processes install once), and reused
offline afterwards. The sidecar resolves the module's bare imports there (resolve_hook.mjs).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from harness.node_target.errors import NodeInstallFailed, NodeUnavailable

log = logging.getLogger("harness.node_target")

INSTALL_TIMEOUT_S = 600
NPM_FLAGS = ("--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev")
_MARKER = ".authstate-harness-complete"
_NETWORK_ERRORS = re.compile(
    r"npm (?:ERR!|error) code (ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|ENETUNREACH|"
    r"EHOSTUNREACH|ERR_SOCKET_TIMEOUT|ECONNABORTED|E5\d\d|SELF_SIGNED_CERT_IN_CHAIN|"
    r"UNABLE_TO_GET_ISSUER_CERT_LOCALLY)|FetchError|network request")


def cache_root() -> Path:
    """Where installs live (shared with the Baileys interop install)."""
    if env := os.environ.get("AUTHSTATE_HARNESS_NODE_CACHE"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "authstate-harness" / "node"


def package_root(module: Path) -> Path | None:
    """The directory of the package.json nearest to `module` (itself or above), if any."""
    for directory in module.resolve().parents:
        if (directory / "package.json").is_file():
            return directory
    return None


def dependencies(root: Path) -> dict[str, str]:
    try:
        manifest = json.loads((root / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NodeInstallFailed(f"cannot read {root / 'package.json'}: {exc}",
                                hint="fix the package.json beside the store module") from None
    deps = manifest.get("dependencies") or {}
    return {str(k): str(v) for k, v in deps.items()} if isinstance(deps, dict) else {}


def _findable(root: Path, name: str) -> bool:
    """Whether Node would find package `name` from `root` (a node_modules here or above)."""
    return any((d / "node_modules" / name / "package.json").is_file()
               for d in (root, *root.parents))


def ensure_dependencies(module: Path, npm: str | None = None) -> Path | None:
    """The cache directory holding the module's npm dependencies, installing them first if need
    be; None when the module needs none or finds them itself (its own node_modules)."""
    root = package_root(module)
    if root is None:
        return None
    deps = dependencies(root)
    if not deps or all(_findable(root, name) for name in deps):
        return None
    manifest = (root / "package.json").read_bytes()
    lock = root / "package-lock.json"
    lock_bytes = lock.read_bytes() if lock.is_file() else b""
    digest = hashlib.sha256(manifest + b"\0" + lock_bytes).hexdigest()[:16]
    base = cache_root()
    base.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", root.name)[:40]
    final = base / f"deps-{name}-{digest}"
    if not (final / _MARKER).is_file():
        with file_lock(base / f"deps-{name}-{digest}.lock"):
            if not (final / _MARKER).is_file():
                _install(npm or _npm(), manifest, lock_bytes, final, root)
    return final


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise NodeUnavailable("npm is not on PATH (needed once, to install the store module's "
                              "dependencies)")
    return npm


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on `path` (created) for the block: one npm install per cache entry."""
    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _install(npm: str, manifest: bytes, lock: bytes, final: Path, source: Path) -> None:
    base = final.parent
    tmp = Path(tempfile.mkdtemp(dir=base, prefix=f".{final.name}-"))
    log_path = base / f"{final.name}.npm.log"
    try:
        (tmp / "package.json").write_bytes(manifest)
        if lock:
            (tmp / "package-lock.json").write_bytes(lock)
        command = [npm, "ci" if lock else "install", *NPM_FLAGS]
        log.info("installing the npm dependencies of %s into %s (first use)", source, final)
        try:
            proc = subprocess.run(command, cwd=tmp, capture_output=True, text=True,
                                  timeout=INSTALL_TIMEOUT_S, check=False)
        except subprocess.TimeoutExpired:
            raise NodeUnavailable(f"npm {command[1]} did not finish within {INSTALL_TIMEOUT_S} s "
                                  "(registry unreachable or very slow?)") from None
        log_path.write_text(proc.stdout + proc.stderr, encoding="utf-8")
        if proc.returncode != 0:
            if _NETWORK_ERRORS.search(proc.stderr):
                raise NodeUnavailable(f"npm could not reach the registry to install the "
                                      f"dependencies of {source} (log: {log_path})")
            tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
            raise NodeInstallFailed(
                f"npm {command[1]} of {source / 'package.json'} failed (exit {proc.returncode}; "
                f"log: {log_path}):\n{tail}",
                hint="run the same npm command in that directory to see the problem")
        (tmp / _MARKER).write_text("ok")
        if final.exists():  # stale, without a marker (an interrupted older install)
            shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
