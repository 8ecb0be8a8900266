"""Errors of the folder export/import: every bad file is listed, nothing is half-done."""

from __future__ import annotations

from collections.abc import Sequence

from harness.authstate.errors import AuthStateError

_SHOWN = 50  # a folder of 20k torn files should not print 20k lines


class BadFolder(AuthStateError):
    """The folder cannot be imported; `problems` lists `(file name, what is wrong)`, sorted."""

    def __init__(self, directory: str, problems: Sequence[tuple[str, str]]) -> None:
        self.directory = directory
        self.problems = sorted(problems)
        lines = [f"  {name}: {reason}" for name, reason in self.problems[:_SHOWN]]
        if len(self.problems) > _SHOWN:
            lines.append(f"  ... and {len(self.problems) - _SHOWN} more")
        super().__init__(
            f"{len(self.problems)} bad file(s) in {directory}; nothing was imported:\n"
            + "\n".join(lines),
            hint="fix or remove the listed files (a torn file from an interrupted Baileys write "
            "cannot be repaired: restore it from a backup or delete it) and run again")


class ExportRefused(AuthStateError):
    """The export cannot produce a faithful Baileys folder; nothing was written."""
