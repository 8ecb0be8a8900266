"""`authstate-harness proxy serve`: the Toxiproxy-compatible fault proxy, in the foreground.

Speaks Toxiproxy's HTTP API (v2.12), so curl, toxiproxy-cli, toxiproxy-python and our own client
drive it; see harness/faults/README.md for the extensions (event log, seed, create-time toxics).
"""

from __future__ import annotations

import argparse

from harness.errors import ConfigError


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1",
                        help="address the HTTP API listens on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=8474,
                        help="API port (default 8474, Toxiproxy's; 0 = any free port)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for toxicity rolls and jitter: the same seed and the same "
                        "calls give the same faults (default: random, printed at start-up)")
    parser.add_argument("--config", metavar="FILE.json", default=None,
                        help="create these proxies at start-up (a JSON array, the body of "
                        "POST /populate)")
    parser.add_argument("--proxy-metrics", action="store_true",
                        help="serve Prometheus byte counters on GET /metrics (as Toxiproxy's "
                        "-proxy-metrics)")


def _serve(args: argparse.Namespace) -> int:
    from harness.faults.server.runner import ServeOptions, configure_logging, serve

    if args.seed is not None and args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}", hint="pass e.g. --seed 42")
    configure_logging()
    return serve(ServeOptions(host=args.host, port=args.port, seed=args.seed,
                              config=args.config, proxy_metrics=args.proxy_metrics))


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
