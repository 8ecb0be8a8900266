"""Errors of the Node.js bridge: what the module threw, a call that never answered, a sidecar
that died, a Node.js that is missing. Each says what to do.

A module error becomes a `NodeStoreError` (a `StoreError`), classified by what it carries, so a
correct store need not translate its errors (harness/authstate/foreign_errors.py has the table):
- a refusal -- JavaScript `TypeError` / `RangeError` (also a Python `TypeError` / `ValueError`,
  as the harness's own refusals are) or a node-postgres error whose `code` is a SQLSTATE of class
  22 (data exception, e.g. 22P05 a NUL in a string) or 23 (constraint): nothing was applied, a
  write's outcome is `failed` (`NodeStoreValueError` for SQLSTATEs);
- an outage -- SQLSTATE 08xxx, 53xxx, 57Pxx, 40001..., a Node network error (ECONNRESET,
  ETIMEDOUT...) or node-postgres' "Connection terminated": `NodeStoreUnavailable` (a
  `StoreUnavailable`), a write's outcome `unknown` (it may have committed);
- anything else: `NodeStoreError`, a write's outcome `unknown`.
An `outcome = 'failed' | 'unknown'` the JavaScript error carries wins. Reads are always
`failed`. Messages are cut short and never carry values: key refs only.
"""

from __future__ import annotations

import re
from typing import Any

from harness.authstate.errors import Outcome, StoreError, StoreTimeout, StoreUnavailable
from harness.authstate.foreign_errors import ErrorKind, sqlstate_kind
from harness.errors import ConfigError, HarnessError

MAX_MESSAGE_CHARS = 200
_SQLSTATE = re.compile(r"[0-9FHPX][0-9A-Z]{4}")  # PostgreSQL classes: 00-72, F0, HV, P0, XX
# Node's network errnos and node-postgres' words for a connection that broke (they carry no code)
NETWORK_CODES = frozenset({"ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "ETIMEDOUT", "EPIPE",
                           "EHOSTUNREACH", "ENETUNREACH", "ENETDOWN", "ENOTFOUND", "EAI_AGAIN",
                           "ESOCKETTIMEDOUT"})
_CONNECTION_TEXTS = re.compile(
    r"Connection terminated|timeout exceeded when trying to connect|Query read timeout|"
    r"Client has encountered a connection error|Connection ended unexpectedly|"
    r"connection (?:was )?(?:closed|lost)", re.IGNORECASE)
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


class NodeStoreError(StoreError):
    """The Node module threw. `js_name`/`js_code`: the JavaScript error's name and code;
    `js_where`: the top of its stack (file:line), for the user to find the throw."""

    def __init__(self, message: str, *, operation: str, company_id: str | None,
                 outcome: Outcome, js_name: str, js_code: str | None, js_where: str) -> None:
        where = js_where.split(" | ")[0] if js_where else "no stack"
        sqlstate = js_code if js_code is not None and _SQLSTATE.fullmatch(js_code) else None
        super().__init__(message, operation=operation, company_id=company_id, outcome=outcome,
                         hint=f"thrown by the Node.js store in {operation} ({where[:120]})",
                         sqlstate=sqlstate)
        self.js_name = js_name
        self.js_code = js_code
        self.js_where = js_where


class NodeStoreTypeError(NodeStoreError, TypeError):
    """The module threw a JavaScript TypeError (e.g. a company id that is not a string)."""


class NodeStoreValueError(NodeStoreError, ValueError):
    """The module threw a JavaScript RangeError (e.g. a value PostgreSQL cannot store)."""


class NodeStoreUnavailable(NodeStoreError, StoreUnavailable):
    """The module's error says PostgreSQL was unreachable (a SQLSTATE of an outage, a network
    errno, node-postgres' "Connection terminated"): retryable, like our StoreUnavailable."""


class NodeCallTimeout(StoreTimeout):
    """The module did not answer within the bridge's deadline; the call may still complete."""


def js_error_kind(name: str, code: str | None, message: str) -> ErrorKind:
    """refusal | outage | error of a JavaScript error (module docstring)."""
    if name in ("TypeError", "RangeError"):
        return "refusal"
    if code is not None:
        kind = sqlstate_kind(code) if _SQLSTATE.fullmatch(code) else None
        if kind is not None:
            return kind
        if code in NETWORK_CODES:
            return "outage"
    if _CONNECTION_TEXTS.search(message):
        return "outage"
    return "error"


def module_error(error: dict[str, Any], *, operation: str, company_id: str | None,
                 write: bool) -> NodeStoreError:
    """The Python exception for a JavaScript error the sidecar described."""
    name = str(error.get("name") or "Error")
    message = str(error.get("message") or "")
    raw_code = error.get("code")
    code = None if raw_code is None else str(raw_code)
    kind = js_error_kind(name, code, message)
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    declared = error.get("outcome")
    outcome: Outcome = ("failed" if not write else
                        declared if declared in ("failed", "unknown") else
                        "failed" if kind == "refusal" else "unknown")
    cls: type[NodeStoreError] = {"TypeError": NodeStoreTypeError,
                                 "RangeError": NodeStoreValueError}.get(name) or {
        "refusal": NodeStoreValueError, "outage": NodeStoreUnavailable}.get(kind, NodeStoreError)
    shown = f"{name}: {message}" if message else name
    if code is not None and code not in shown:
        shown += f" [{code}]"
    return cls(shown, operation=operation, company_id=company_id, outcome=outcome,
               js_name=name, js_code=code, js_where=str(error.get("where") or ""))
