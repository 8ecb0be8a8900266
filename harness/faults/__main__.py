"""`python -m harness.faults serve ...`: the fault proxy server (used by the subprocess mode).

Same options as `authstate-harness proxy serve`, plus `--announce` (print a JSON line with the
URL once ready). Exit 0 after SIGINT/SIGTERM, 2 on a harness error (message and hint on stderr).
"""

from __future__ import annotations

import argparse
import sys

from harness.errors import HarnessError
from harness.faults.server.options import add_serve_arguments, serve_options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.faults")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the Toxiproxy-compatible fault proxy server")
    add_serve_arguments(serve)
    serve.add_argument("--announce", action="store_true",
                       help="print {url, pid, seed} as one JSON line on stdout once ready")
    args = parser.parse_args(argv)
    from harness.faults.server.runner import configure_logging
    from harness.faults.server.runner import serve as run

    try:
        options = serve_options(args, announce=args.announce)
        configure_logging()
        return run(options)
    except HarnessError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
