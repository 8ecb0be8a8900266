"""Run server processes as an unprivileged user when we are root.

PostgreSQL refuses to run as root. When the harness runs as root (CI containers), servers run as a
dedicated system user, created on first use.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from harness.errors import ProvisioningError

SERVICE_USER = "authstate-harness"


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int

    def demote(self) -> Callable[[], None]:
        """A `preexec_fn` that drops to this user in the child process."""
        uid, gid = self.uid, self.gid

        def _drop() -> None:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

        return _drop

    def chown(self, path: str | os.PathLike[str]) -> None:
        os.chown(path, self.uid, self.gid)


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def service_user() -> ServiceUser | None:
    """The user servers must run as: None when we are not root (run as ourselves)."""
    if not is_root():
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        entry = _create_system_user(SERVICE_USER)
    return ServiceUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _create_system_user(name: str) -> pwd.struct_passwd:
    nologin = shutil.which("nologin") or "/usr/sbin/nologin"
    for cmd in (
        ["useradd", "--system", "--no-create-home", "--shell", nologin, name],
        ["adduser", "--system", "--no-create-home", "--disabled-login", "--group", name],
        ["adduser", "-S", "-D", "-H", name],  # busybox
    ):
        if shutil.which(cmd[0]) is None:
            continue
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            last = proc.stderr.strip()
            continue
        # said once, when it happens: the user stays (PostgreSQL refuses to run as root)
        sys.stderr.write(f"authstate-harness: running as root: created the system user "
                         f"{name!r} (no home, no login shell) that PostgreSQL runs as; it is "
                         f"kept for later runs (`userdel {name}` removes it)\n")
        return entry
    raise ProvisioningError(
        f"running as root, and could not create the system user {name!r} that PostgreSQL "
        f"must run as ({locals().get('last', 'no useradd/adduser found')})",
        hint=f"create it yourself (`useradd --system {name}`) or run the harness as a normal user",
    )
