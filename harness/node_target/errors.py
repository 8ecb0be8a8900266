"""Errors of the Node.js bridge: what the module threw, a call that never answered, a sidecar
that died, a Node.js that is missing. Each says what to do.

A module error becomes a `NodeStoreError` (a `StoreError`), so the chaos driver classifies it
like ours: a read that threw is `fail`; a write that threw is `info` (it may have committed)
unless the JavaScript error carries `outcome = 'failed'`. JavaScript `TypeError` and `RangeError`
(a refused argument) are also Python `TypeError` / `ValueError`, as the harness's own refusals
are. Messages are cut short and never carry values: key refs only.
"""

from __future__ import annotations

from typing import Any, ClassVar

from harness.authstate.errors import Outcome, StoreError, StoreTimeout
from harness.errors import ConfigError, HarnessError

MAX_MESSAGE_CHARS = 200
HOW_TO_ENABLE_NODE = ("install Node.js >= 20.6 with npm (node and npm on PATH); the first run "
                      "installs the module's npm dependencies into the harness's cache "
                      "(AUTHSTATE_HARNESS_NODE_CACHE chooses where), later runs work offline")


class NodeUnavailable(ConfigError):
    """Node.js/npm missing or too old, or the npm registry unreachable on a first install."""

    def __init__(self, message: str) -> None:
        super().__init__(message, hint=HOW_TO_ENABLE_NODE)


class NodeInstallFailed(HarnessError):
    """npm could reach the registry but the install failed (a bad package.json, a conflict)."""


class NodeSidecarCrashed(HarnessError):
    """The sidecar process exited while the harness still needed it (the module crashed the
    process, or did not load). Carries the exit code and the tail of the module's output."""

    def __init__(self, message: str, *, hint: str | None = None, returncode: int | None = None,
                 output_tail: str = "") -> None:
        super().__init__(message, hint=hint)
        self.returncode = returncode
        self.output_tail = output_tail


class NodeStoreCrashed(NodeSidecarCrashed):
    """The module crashed its process after it was loaded (an unhandled 'error' event or
    rejection, process.exit): what the store did, so a verdict (anomaly `crash`, with the
    module's last output), not a failure of the harness. A module that cannot even be imported
    stays a plain NodeSidecarCrashed: a bad target spec."""

    from_target: ClassVar[bool] = True
    anomaly: ClassVar[str] = "crash"


class NodeStoreError(StoreError):
    """The Node module threw. `js_name`/`js_code`: the JavaScript error's name and code;
    `js_where`: the top of its stack (file:line), for the user to find the throw."""

    def __init__(self, message: str, *, operation: str, company_id: str | None,
                 outcome: Outcome, js_name: str, js_code: str | None, js_where: str) -> None:
        where = js_where.split(" | ")[0] if js_where else "no stack"
        super().__init__(message, operation=operation, company_id=company_id, outcome=outcome,
                         hint=f"thrown by the Node.js store in {operation} ({where[:120]})")
        self.js_name = js_name
        self.js_code = js_code
        self.js_where = js_where


class NodeStoreTypeError(NodeStoreError, TypeError):
    """The module threw a JavaScript TypeError (e.g. a company id that is not a string)."""


class NodeStoreValueError(NodeStoreError, ValueError):
    """The module threw a JavaScript RangeError (e.g. a value PostgreSQL cannot store)."""


class NodeCallTimeout(StoreTimeout):
    """The module did not answer within the bridge's deadline; the call may still complete."""


def module_error(error: dict[str, Any], *, operation: str, company_id: str | None,
                 write: bool) -> NodeStoreError:
    """The Python exception for a JavaScript error the sidecar described."""
    name = str(error.get("name") or "Error")
    message = str(error.get("message") or "")
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    declared = error.get("outcome")
    outcome: Outcome = ("failed" if not write else
                        declared if declared in ("failed", "unknown") else "unknown")
    cls = {"TypeError": NodeStoreTypeError, "RangeError": NodeStoreValueError}.get(
        name, NodeStoreError)
    code = error.get("code")
    return cls(f"{name}: {message}" if message else name, operation=operation,
               company_id=company_id, outcome=outcome, js_name=name,
               js_code=None if code is None else str(code), js_where=str(error.get("where") or ""))
