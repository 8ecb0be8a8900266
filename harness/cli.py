"""`authstate-harness` command line: one sub-command per module in `harness.commands`.

Exit codes: 0 success, 1 a check failed (test, gate, health), 2 harness/tool error, 130 Ctrl-C.
A tool error never exits 1 (in CI, 1 is a verdict) and never shows a traceback unless `-vv`
(then every error does: a bug, and a tool error with the exception that caused it).
Everything the CLI writes goes through `harness.dsn.redact_text` with the passwords of the
DSN in use, so no password reaches a terminal or a log whatever the error text holds.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import io
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import IO

from rich.markup import escape

from harness.commands import COMMAND_MODULES
from harness.commands._console import make_console
from harness.dsn import passwords_of, redact_text
from harness.errors import HarnessError
from harness.install_info import describe as describe_install
from harness.paths import checkout_root

EXIT_OK, EXIT_CHECK_FAILED, EXIT_HARNESS_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

err_console = make_console(stderr=True)


def _add_verbose(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("-v", "--verbose", action="count", default=default,
                        help="more log output (-vv for debug and tracebacks)")


def _every_command_parser(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    for action in parser._actions:  # argparse offers no public walk
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield sub
                yield from _every_command_parser(sub)


class _VersionAction(argparse.Action):
    """`--version`: one unwrapped line (argparse's own wraps it at the terminal width), read
    only when asked (it looks at the installed distribution's metadata)."""

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> None:
        print(f"{parser.prog} {describe_install()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authstate-harness",
        description="Prove a PostgreSQL-backed Baileys auth-state store survives production.",
        epilog="exit codes: 0 success; 1 a check failed (test, gate, health); 2 harness "
               "error (message + hint); 130 interrupted")
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="show the version, how it was installed and where, and exit")
    _add_verbose(parser, 0)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"harness.commands.{name}").register(sub)
    for command in _every_command_parser(parser):
        if command.prog.split()[1:2] != ["test"]:  # `test -v` is pytest's -v
            _add_verbose(command, argparse.SUPPRESS)  # `cleanup -v` as well as `-v cleanup`
    return parser


# Commands whose arguments after the command name go verbatim to another tool (pytest).
PASSTHROUGH_COMMANDS = frozenset({"test"})


def _split_passthrough(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split `[-v] test ARGS...` so ARGS reach pytest untouched (argparse would eat `-k`, `-x`).

    `test --help` is ours (it says how to reach pytest's: `test -- --help`)."""
    for i, token in enumerate(argv):
        if not token.startswith("-"):
            if token not in PASSTHROUGH_COMMANDS or argv[i + 1:i + 2] in (["-h"], ["--help"]):
                return argv, None
            return argv[: i + 1], argv[i + 1:]
    return argv, None


class RedactingStream(io.TextIOBase):
    """A text stream that scrubs passwords from what is written, and goes quiet on a closed
    pipe (`health | head -1`): the command still finishes and returns its own exit code."""

    def __init__(self, stream: IO[str], secrets: set[str]) -> None:
        self._stream = stream
        self._secrets = secrets
        self._broken = False

    def write(self, text: str) -> int:
        if not self._broken:
            try:
                self._stream.write(redact_text(text, self._secrets))
            except BrokenPipeError:
                self._go_quiet()
        return len(text)

    def flush(self) -> None:
        if not self._broken:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._go_quiet()

    def _go_quiet(self) -> None:
        """Drop further output; point the descriptor at /dev/null so the interpreter's final
        flush does not print 'Exception ignored ... BrokenPipeError' either."""
        self._broken = True
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")


@contextlib.contextmanager
def redacted_output(secrets: set[str]) -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    sys.stdout = RedactingStream(saved[0], secrets)  # type: ignore[assignment]
    sys.stderr = RedactingStream(saved[1], secrets)  # type: ignore[assignment]
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        sys.stdout, sys.stderr = saved


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace
                    ) -> argparse.ArgumentParser:
    """The parser of the (sub-)command `args` selected (`pg up` -> pg's `up` parser)."""
    for action in parser._actions:  # argparse offers no public walk
        if isinstance(action, argparse._SubParsersAction):
            chosen = getattr(args, action.dest, None)
            if chosen in action.choices:
                return _command_parser(action.choices[chosen], args)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parse_args, except that an unknown option is refused by its command's parser (`run
    --profle` prints run's usage, not the top-level one) with the closest option it has."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        command = _command_parser(parser, args)
        options = [o for a in command._actions for o in a.option_strings if o.startswith("--")]
        guesses = [g for token in extras if token.startswith("-")
                   for g in difflib.get_close_matches(token.split("=")[0], options, n=1,
                                                     cutoff=0.75)]
        command.error(f"unrecognized arguments: {' '.join(extras)}"
                      + (f" (did you mean {' '.join(dict.fromkeys(guesses))}?)"
                         if guesses else ""))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    if checkout_root() is None:
        # An installed copy runs in a team's repository: no `python -m harness...` child may
        # import a `harness/` folder of theirs from the current directory (what -P does).
        os.environ.setdefault("PYTHONSAFEPATH", "1")
    parser = build_parser()
    own, passthrough = _split_passthrough(list(sys.argv[1:] if argv is None else argv))
    args = _parse(parser, own)
    if passthrough is not None:
        args.pytest_args = passthrough
    secrets = passwords_of(getattr(args, "dsn", None)) | passwords_of(
        os.environ.get("AUTHSTATE_DSN"))
    with redacted_output(secrets):
        return _dispatch(parser, args)


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_HARNESS_ERROR
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        if args.verbose >= 2:  # -vv: where it came from (a refused connection's own error too)
            sys.stderr.write("".join(traceback.format_exception(exc)))
        _error(exc.message, exc.hint)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted; everything started has been stopped[/]")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug must not look like a verdict (exit 1)
        if args.verbose >= 2:
            sys.stderr.write("".join(traceback.format_exception(exc)))
        _error(f"unexpected {type(exc).__name__}: {exc}",
               "this is a bug in authstate-harness, not a finding about your store; run "
               "again with -vv for the traceback and report it")
        return EXIT_HARNESS_ERROR


def _error(message: str, hint: str | None) -> None:
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    if hint:
        err_console.print(f"  [yellow]hint:[/] {escape(hint)}", highlight=False)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
