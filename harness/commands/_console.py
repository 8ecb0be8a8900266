"""The CLI's consoles: live output for a person, wide plain lines for logs.

Rich sizes tables to the terminal; without one (CI logs, `| tee`, a file) it assumes 80
columns and folds every table into narrow wrapped cells. Logs have no width limit, so when the
output is not a terminal and `COLUMNS` does not say otherwise, tables get room to stay on one
line per row.
"""

from __future__ import annotations

import os

from rich.console import Console

LOG_WIDTH = 200


def make_console(*, stderr: bool = False) -> Console:
    console = Console(stderr=stderr, soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console.width = LOG_WIDTH
    return console
