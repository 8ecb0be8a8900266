"""Errors the user can act on.

Every error raised to the CLI carries a *hint*: one sentence saying what to do next. The CLI prints
message and hint and exits with code 2 (harness error), never a traceback.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class for failures of the harness itself (as opposed to a failed check)."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ProvisioningError(HarnessError):
    """A service we need (PostgreSQL, fault proxy, node) could not be found or started."""


class ConfigError(HarnessError):
    """A configuration value, flag or input file is invalid."""
