"""`authstate-harness` command line: one sub-command per module in `harness.commands`."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from rich.console import Console

from harness import __version__
from harness.commands import COMMAND_MODULES
from harness.errors import HarnessError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_HARNESS_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

err_console = Console(stderr=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authstate-harness",
        description="Prove a PostgreSQL-backed Baileys auth-state store survives production.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        # DEV-ONLY until every command module has landed: remove at integration
        if importlib.util.find_spec(f"harness.commands.{name}") is None:
            continue
        importlib.import_module(f"harness.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_HARNESS_ERROR
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}")
        if exc.hint:
            err_console.print(f"  [yellow]hint:[/] {exc.hint}")
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted; everything started has been stopped[/]")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
