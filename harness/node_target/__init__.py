"""Node.js targets: the suites run against a Baileys auth-state store written in JavaScript.

    --target node:path/to/store.js[#exportName]      (.js, .mjs or .cjs)

The module exports `async (companyId) => ({ state, saveCreds })` (the `useMultiFileAuthState`
convention; `#exportName` picks a named export, the default is the module's default export, and
`module.exports = fn` counts as one) and may export `close()`, awaited when the target closes.
Each opened target is one Node.js sidecar process (a chaos child process opens its own) that
imports the module with `DATABASE_URL` and PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE set to the
run's database (through the fault proxy in chaos scenarios) and answers JSON lines over pipes,
values in Baileys' BufferJSON (PROTOCOL.md). Module errors arrive as `NodeStoreError`s, calls
that hang past the deadline as `NodeCallTimeout` (outcome unknown), a sidecar the module
crashed as `NodeStoreCrashed` (a verdict: anomaly `crash`) with the module's last output, one
that never got ready as `NodeStoreSetupFailed` (a verdict too: anomaly `setup-failed`; `run`
refuses a module that cannot be imported at all before it starts, as a bad spec).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from harness.node_target.errors import (
    NodeCallTimeout,
    NodeSidecarCrashed,
    NodeStoreCrashed,
    NodeStoreError,
    NodeStoreSetupFailed,
    NodeUnavailable,
)
from harness.node_target.spec import DEFAULT_EXPORT, SPEC_FORM, is_node_spec

__all__ = ["DEFAULT_EXPORT", "SPEC_FORM", "NodeCallTimeout", "NodeSidecarCrashed",
           "NodeStoreCrashed", "NodeStoreError", "NodeStoreSetupFailed", "NodeUnavailable",
           "is_node_spec", "resolve_node_target"]


def resolve_node_target(spec: str) -> tuple[str, str, Callable[..., Any]]:
    """(name, description, factory) of `node:path[#export]` (ConfigError if it cannot run here);
    `harness.targets` makes the TargetSpec, marked out-of-process."""
    from harness.node_target.spec import open_node_target, resolve

    name, description, module, export, deps_dir = resolve(spec)
    factory = functools.partial(open_node_target, module=module, export=export,
                                deps_dir=deps_dir, label=name)
    return name, description, factory
