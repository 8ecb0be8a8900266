"""`authstate-harness proxy serve`: the Toxiproxy-compatible fault proxy, in the foreground.

Speaks Toxiproxy's HTTP API (v2.12), so curl, toxiproxy-cli, toxiproxy-python and our own client
drive it; see harness/faults/README.md for the extensions (event log, seed, create-time toxics).
"""

from __future__ import annotations

import argparse

from harness.faults.server.options import add_serve_arguments, serve_options


def _serve(args: argparse.Namespace) -> int:
    from harness.faults.server.runner import configure_logging, serve

    options = serve_options(args)
    configure_logging()
    return serve(options)


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "proxy", help="the Toxiproxy-compatible fault proxy",
        description="Fault injection between the store and PostgreSQL, driven through "
        "Toxiproxy's HTTP API.")
    sub = parser.add_subparsers(dest="proxy_command", metavar="SUBCOMMAND", required=True)
    serve = sub.add_parser(
        "serve", help="run the fault proxy server until Ctrl-C",
        description="Run the fault proxy server in the foreground. Logs one line per API call "
        "and connection event; Ctrl-C or SIGTERM closes every listener and connection.")
    add_serve_arguments(serve)
    serve.set_defaults(func=_serve)
