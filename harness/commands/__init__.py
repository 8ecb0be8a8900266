"""CLI sub-commands. Each module exposes `register(subparsers)` and sets `func` on its parser.

Kept as a list of module names so each command lives in its own small file.
"""

COMMAND_MODULES: tuple[str, ...] = (
    "run",
    "test",
    "pg",
    "proxy",
    "export_files",
    "import_files",
    "cleanup",
    "health",
    "compare",
    "report",
    "load",
    "calibrate",
)
