"""`authstate-harness` command line: one sub-command per module in `harness.commands`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from harness import __version__
from harness.commands import COMMAND_MODULES
from harness.commands._console import make_console
from harness.errors import HarnessError

EXIT_OK, EXIT_CHECK_FAILED, EXIT_HARNESS_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

err_console = make_console(stderr=True)


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
        importlib.import_module(f"harness.commands.{name}").register(sub)
    return parser


# Commands whose arguments after the command name go verbatim to another tool (pytest).
PASSTHROUGH_COMMANDS = frozenset({"test"})


def _split_passthrough(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split `[-v] test ARGS...` so ARGS reach pytest untouched (argparse would eat `-k`, `-x`)."""
    for i, token in enumerate(argv):
        if not token.startswith("-"):
            return (argv[: i + 1], argv[i + 1:]) if token in PASSTHROUGH_COMMANDS else (argv, None)
    return argv, None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    own, passthrough = _split_passthrough(list(sys.argv[1:] if argv is None else argv))
    args = parser.parse_args(own)
    if passthrough is not None:
        args.pytest_args = passthrough
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
