"""Errors the user can act on, and the line between a harness failure and a verdict.

Every error raised to the CLI carries a *hint*: one sentence saying what to do next. The CLI prints
message and hint and exits with code 2 (harness error), never a traceback.

Inside the suites the line is drawn by `is_harness_failure`: only an error of the harness itself
(PostgreSQL or the fault proxy unavailable, a bad spec or configuration, the sidecar protocol
broken) makes a run exit 2. Errors that report what the target under test did -- threw, refused,
hung, crashed its process -- set `from_target`: they fail the test like any finding, and the run
exits 1 (docs/exit-codes.md has the whole table).
"""

from __future__ import annotations

from typing import ClassVar


class HarnessError(Exception):
    """Base class for failures of the harness itself (as opposed to a failed check)."""

    exit_code = 2
    # True for errors that report what the target under test did (auth-state store errors, a
    # store's crashed process): in a suite they are verdicts about the target, not failures of
    # the harness. exit_code still applies when a command of ours fails with one directly.
    from_target: ClassVar[bool] = False

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


def is_harness_failure(exc: BaseException) -> bool:
    """Whether `exc`, ending a test, means the harness could not do its job (exit 2) rather than
    a finding about the target (exit 1): a HarnessError not raised on the target's behalf, alone
    or anywhere in an exception group (Hypothesis reports several distinct failures as one)."""
    if isinstance(exc, BaseExceptionGroup):
        return any(is_harness_failure(inner) for inner in exc.exceptions)
    return isinstance(exc, HarnessError) and not exc.from_target
