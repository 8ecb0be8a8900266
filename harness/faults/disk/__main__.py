"""`python -m harness.faults.disk serve|ctl`: run the filesystem, or send it a command.

    python -m harness.faults.disk serve --mount /mnt/x --backing /var/tmp/x-backing \\
        --control /tmp/x.sock
    python -m harness.faults.disk ctl /tmp/x.sock status
    python -m harness.faults.disk ctl /tmp/x.sock power-loss mode=torn-op keep_bytes=100
    python -m harness.faults.disk ctl /tmp/x.sock eio on=fsync count=1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.faults.disk",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="mount the filesystem and serve it (foreground)")
    serve.add_argument("--mount", required=True, type=Path)
    serve.add_argument("--backing", required=True, type=Path)
    serve.add_argument("--control", required=True, type=Path)
    serve.add_argument("--watch-stdin", action="store_true",
                       help="detach the mount when standard input closes")
    serve.add_argument("--debug", action="store_true", help="libfuse's debug output")
    ctl = sub.add_parser("ctl", help="send one command to a running filesystem")
    ctl.add_argument("socket", type=Path)
    ctl.add_argument("cmd")
    ctl.add_argument("args", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.command == "serve":
        from harness.faults.disk.server import serve as run

        return run(args.mount, args.backing, args.control, watch_stdin=args.watch_stdin,
                   debug=args.debug)
    from harness.faults.disk.control import DiskControl, DiskControlError

    options = dict(item.split("=", 1) for item in args.args if "=" in item)
    try:
        result = DiskControl(args.socket).call(args.cmd, **{k: _value(v)
                                                            for k, v in options.items()})
    except DiskControlError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
