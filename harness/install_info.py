"""How this copy of the harness got here: a clone (editable or not), a wheel, a package index.

report.json records it beside the version, so two reports that differ can be told apart by
what was installed, not only by what the version string says. Read from the distribution's
own metadata (PEP 610 `direct_url.json`, `INSTALLER`), never guessed from the version.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from harness import __version__
from harness.paths import PACKAGE_DIR, checkout_root

DISTRIBUTION = "authstate-harness"


def _our_distribution() -> metadata.Distribution | None:
    """The installed distribution this very `harness` package belongs to. An environment can
    see more than one: a clone's own `*.egg-info` (found first when the clone is the current
    directory), or another copy installed beside a clone run with PYTHONPATH."""
    for dist in metadata.distributions(name=DISTRIBUTION):
        direct = _direct_url(dist)
        direct = direct or {}
        if direct.get("dir_info", {}).get("editable"):
            if _file_path(str(direct.get("url", ""))) == PACKAGE_DIR.parent:
                return dist
            continue
        if not dist.read_text("RECORD"):
            continue  # a source tree's egg-info, not an installation
        located = Path(str(dist.locate_file("harness/__init__.py"))).resolve()
        if located.parent == PACKAGE_DIR:
            return dist
    return None


def _direct_url(dist: metadata.Distribution) -> dict[str, Any] | None:
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _file_path(url: str) -> Path | None:
    parts = urlsplit(url)
    return Path(unquote(parts.path)).resolve() if parts.scheme == "file" else None


def _kind(direct: dict[str, Any] | None) -> tuple[str, str | None]:
    """(kind, what it was installed from: a file name or URL without credentials)."""
    if direct is None:
        return "index", None  # from a package index (PyPI or a mirror)
    url = str(direct.get("url", ""))
    shown = Path(unquote(urlsplit(url).path)).name or None
    if "vcs_info" in direct:
        return "vcs", urlsplit(url)._replace(netloc=urlsplit(url).hostname or "").geturl()
    if "archive_info" in direct:
        return ("wheel" if shown and shown.endswith(".whl") else "sdist"), shown
    if direct.get("dir_info", {}).get("editable"):
        return "editable", shown
    return "directory", shown


def _tool_environment() -> str | None:
    """pipx and uv keep their tools' virtual environments under their own directories:
    `pipx install` in .../pipx/venvs/, `pipx run` in a cache .../pipx/<hash>/, `uv tool install`
    in .../uv/tools/, `uvx` / `uv tool run` in uv's cache .../uv/archive-v0/<hash>/."""
    parts = Path(sys.prefix).resolve().parts
    if "pipx" in parts or ".pipx" in parts:
        return "pipx"
    if "uv" in parts:
        after = parts[parts.index("uv") + 1:]
        if after[:1] == ("tools",):
            return "uv tool"
        if after and after[0].startswith("archive-v"):
            return "uv tool run"
    return None


def install_info() -> dict[str, Any]:
    """`{"kind", "from", "installer", "environment", "editable"}`; kind is "clone" (a source
    tree, installed editable or not), "wheel", "sdist", "index", "vcs", "directory"."""
    dist = _our_distribution()
    direct = _direct_url(dist) if dist is not None else None
    installer = ((dist.read_text("INSTALLER") or "").strip() or None) if dist else None
    in_venv = sys.prefix != sys.base_prefix
    environment = _tool_environment() or ("virtualenv" if in_venv else "system")
    if checkout_root() is not None:
        editable = bool(direct and direct.get("dir_info", {}).get("editable"))
        return {"kind": "clone", "from": None, "installer": installer if editable else None,
                "environment": environment, "editable": editable}
    kind, source = _kind(direct) if dist is not None else ("unknown", None)
    return {"kind": kind, "from": source, "installer": installer, "environment": environment,
            "editable": False}


def describe() -> str:
    """One line for `--version`: `0.1.0 (wheel, pip, virtualenv)`."""
    info = install_info()
    extra = [info["kind"] + (" editable" if info["editable"] else "")]
    extra += [v for v in (info["installer"], info["environment"]) if v]
    return f"{__version__} ({', '.join(extra)}; {PACKAGE_DIR})"
