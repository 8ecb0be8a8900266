"""Shared by the Node.js bridge tests: where the test modules are, how to skip without node."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import psutil
import pytest

from harness.node_target.errors import HOW_TO_ENABLE_NODE, NodeUnavailable
from harness.node_target.spec import node_binary
from harness.node_target.target import NodeTarget

MODULES = Path(__file__).resolve().parent / "modules"
PROBE = MODULES / "probe.mjs"
FAKE_DSN = "postgresql://prober:secret@127.0.0.1:5999/probe_db"  # the probe never connects

OpenProbe = Callable[..., Awaitable[NodeTarget]]


def require_node() -> str:
    """node's path, or skip (fail when AUTHSTATE_HARNESS_REQUIRE_NODE is set, as in CI)."""
    try:
        return node_binary()
    except NodeUnavailable as exc:
        reason = f"Node.js bridge tests need node: {exc.message}. To enable: {HOW_TO_ENABLE_NODE}"
        if os.environ.get("AUTHSTATE_HARNESS_REQUIRE_NODE"):
            pytest.fail(f"{reason} (AUTHSTATE_HARNESS_REQUIRE_NODE is set)", pytrace=False)
        pytest.skip(reason)


def sidecars(parent_pid: int | None = None) -> list[psutil.Process]:
    """Live (not zombie) sidecar processes, optionally only the children of `parent_pid`."""
    found = []
    for proc in psutil.process_iter(["cmdline", "ppid", "status"]):
        cmdline = proc.info.get("cmdline") or []
        if not any(part.endswith("node_target/sidecar.mjs") for part in cmdline):
            continue
        if proc.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        if parent_pid is None or proc.info.get("ppid") == parent_pid:
            found.append(proc)
    return found
