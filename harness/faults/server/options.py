"""Command-line options of the fault proxy server, shared by both ways to start it.

`authstate-harness proxy serve` and `python -m harness.faults serve` (the subprocess mode) take
the same options; they are defined here, in the faults package, so the server's own entry point
does not reach up into the CLI commands. Importing this module is cheap (no aiohttp).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from harness.errors import ConfigError

if TYPE_CHECKING:
    from harness.faults.server.runner import ServeOptions


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


def serve_options(args: argparse.Namespace, *, announce: bool = False) -> ServeOptions:
    """The parsed arguments as `ServeOptions`, validated (a negative seed is refused)."""
    from harness.faults.server.runner import ServeOptions

    if args.seed is not None and args.seed < 0:
        raise ConfigError(f"--seed must be >= 0, got {args.seed}", hint="pass e.g. --seed 42")
    return ServeOptions(host=args.host, port=args.port, seed=args.seed, config=args.config,
                        proxy_metrics=args.proxy_metrics, announce=announce)
