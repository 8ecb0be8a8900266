"""Real Baileys from npm, installed once into the harness's Node.js cache (outside the repo).

The signal workload runs Baileys' own Signal repository, and the interop tests cross-check the
codec against it: both need `@whiskeysockets/baileys` (7.0.0-rc14: the first of the v7 line
that installs without GitHub access; earlier ones pull libsignal from GitHub). It is installed
into `$AUTHSTATE_HARNESS_NODE_CACHE/baileys-<version>` (default
`${XDG_CACHE_HOME:-~/.cache}/authstate-harness/node/`), built in a temporary directory and
renamed into place (never half-visible), under a file lock (parallel processes install once),
and reused offline afterwards (a completion marker and the installed version decide).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from harness.node_target.npm_cache import cache_root, file_lock

BAILEYS_PACKAGE = "@whiskeysockets/baileys"
BAILEYS_VERSION = "7.0.0-rc14"
MIN_NODE_MAJOR = 20
NPM_INSTALL_ARGS = ("install", "--ignore-scripts", "--legacy-peer-deps", "--no-audit", "--no-fund")
INSTALL_TIMEOUT_S = 900
HOW_TO_ENABLE = (f"install Node.js >= {MIN_NODE_MAJOR} with npm and network access to the npm "
                 f"registry (the first run installs {BAILEYS_PACKAGE}@{BAILEYS_VERSION} into "
                 "the cache; set AUTHSTATE_HARNESS_NODE_CACHE to choose where)")
_MARKER = ".authstate-harness-complete"
_NETWORK_ERRORS = re.compile(
    r"npm error code (ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNRESET|ENETUNREACH|"
    r"EHOSTUNREACH|ERR_SOCKET_TIMEOUT|ECONNABORTED|E5\d\d|SELF_SIGNED_CERT_IN_CHAIN|"
    r"UNABLE_TO_GET_ISSUER_CERT_LOCALLY)|FetchError|network request")


class BaileysUnavailable(Exception):
    """Node/npm missing or too old, or the registry unreachable: Baileys cannot run here
    (tests skip, saying how to enable them)."""


class BaileysInstallFailed(RuntimeError):
    """npm reached the registry but the install failed: a real error, not a skip."""


def package_dir(root: Path) -> Path:
    """The installed `@whiskeysockets/baileys` of an install root (its `lib/` holds the JS)."""
    return root / "node_modules" / BAILEYS_PACKAGE


def node_binaries() -> tuple[str, str]:
    """(node, npm) on PATH; BaileysUnavailable when missing or node is older than 20."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise BaileysUnavailable(f"{'node' if node is None else 'npm'} is not on PATH")
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30,
                         check=False).stdout.strip()
    match = re.match(r"v(\d+)\.", out)
    if match is None or int(match.group(1)) < MIN_NODE_MAJOR:
        raise BaileysUnavailable(f"node {out or '(unknown version)'} is older than "
                                 f"{MIN_NODE_MAJOR}; Baileys 7 needs >= {MIN_NODE_MAJOR}")
    return node, npm


def installed_version(root: Path) -> str | None:
    try:
        manifest = json.loads((package_dir(root) / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest.get("version")


def _complete(root: Path, version: str) -> bool:
    return (root / _MARKER).is_file() and installed_version(root) == version


def _npm_install(npm: str, into: Path, version: str, log: Path) -> None:
    """npm install into `into`; its output goes to `log` (kept after a failure)."""
    (into / "package.json").write_text(json.dumps(
        {"name": "authstate-harness-node-cache", "private": True, "type": "module"}))
    try:
        proc = subprocess.run([npm, *NPM_INSTALL_ARGS, f"{BAILEYS_PACKAGE}@{version}"],
                              cwd=into, capture_output=True, text=True,
                              timeout=INSTALL_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BaileysUnavailable(f"npm install did not finish in {INSTALL_TIMEOUT_S} s "
                                 "(registry unreachable or very slow?)") from exc
    log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    if proc.returncode == 0 and installed_version(into) == version:
        return
    tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
    if _NETWORK_ERRORS.search(proc.stderr):
        said = [ln for ln in proc.stderr.splitlines() if "error code" in ln or "request to" in ln]
        raise BaileysUnavailable(f"npm could not reach the registry ({'; '.join(said[:2])}; "
                                 f"log: {log})")
    raise BaileysInstallFailed(f"npm install of {BAILEYS_PACKAGE}@{version} failed "
                               f"(exit {proc.returncode}; log: {log}):\n{tail}")


def install_baileys(version: str = BAILEYS_VERSION,
                    root: Path | None = None) -> tuple[Path, str]:
    """(install root, node binary) of Baileys `version`, installing it first if the cache lacks
    it. Raises BaileysUnavailable (cannot run here) or BaileysInstallFailed."""
    node, npm = node_binaries()
    base = root if root is not None else cache_root()
    base.mkdir(parents=True, exist_ok=True)
    final = base / f"baileys-{version}"
    if not _complete(final, version):
        with file_lock(base / f"baileys-{version}.lock"):
            if not _complete(final, version):  # another process may have finished meanwhile
                tmp = Path(tempfile.mkdtemp(dir=base, prefix=f".baileys-{version}-"))
                try:
                    _npm_install(npm, tmp, version, base / f"baileys-{version}.npm.log")
                    (tmp / _MARKER).write_text(version)
                    if final.exists():  # a stale or partial install from an older harness
                        stale = Path(tempfile.mkdtemp(dir=base, prefix=".stale-"))
                        final.rename(stale / final.name)
                        shutil.rmtree(stale, ignore_errors=True)
                    tmp.rename(final)
                finally:
                    if tmp.exists():
                        shutil.rmtree(tmp, ignore_errors=True)
    return final, node
