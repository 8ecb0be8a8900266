"""`authstate-harness pg up|down|status`: a PostgreSQL for trying the other commands by hand.

`pg up` starts the embedded server detached and prints its DSN; `pg down` stops it and removes
its files. `pg up --foreground` runs until Ctrl-C instead (nothing outlives it). State of detached
servers lives in a small JSON file per name in the user's runtime directory.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
from pathlib import Path

from rich.console import Console

from harness.errors import ConfigError, ProvisioningError
from harness.infra.postgres.embedded import EmbeddedPostgres

console = Console(soft_wrap=True)  # never break a DSN across lines


def _state_file(name: str) -> Path:
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"invalid server name {name!r}", hint="use letters, digits, - and _")
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"authstate-harness-{os.getuid()}" / f"pg-{name}.json"


def _up(args: argparse.Namespace) -> int:
    state = _state_file(args.name)
    if state.exists():
        info = json.loads(state.read_text())
        pg = EmbeddedPostgres.attach(info["base_dir"], info["port"])
        if pg.is_running():
            console.print(info["dsn"])
            console.print(f"[dim]already running ({args.name}); stop it with "
                          f"`authstate-harness pg down --name {args.name}`[/]", highlight=False)
            return 0
        state.unlink()
    pg = EmbeddedPostgres(detached=not args.foreground).start()
    if args.foreground:
        console.print(pg.dsn)
        console.print(f"[dim]PostgreSQL {pg.version} running; Ctrl-C stops it and removes its "
                      "files[/]")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            pg.close()
        return 0
    state.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    state.write_text(json.dumps({"dsn": pg.dsn, "port": pg.port, "base_dir": str(pg.base_dir),
                                 "version": pg.version}))
    console.print(pg.dsn)
    console.print(f"[dim]PostgreSQL {pg.version} started ({args.name}); "
                  f"`export AUTHSTATE_DSN={pg.dsn}` to use it, "
                  f"`authstate-harness pg down --name {args.name}` to stop it[/]", highlight=False)
    return 0


def _down(args: argparse.Namespace) -> int:
    state = _state_file(args.name)
    if not state.exists():
        raise ProvisioningError(f"no server named {args.name!r} was started with `pg up`",
                                hint="`authstate-harness pg status` lists nothing to stop")
    info = json.loads(state.read_text())
    EmbeddedPostgres.attach(info["base_dir"], info["port"]).close()
    state.unlink()
    console.print(f"stopped {args.name} and removed {info['base_dir']}")
    return 0


def _status(args: argparse.Namespace) -> int:
    state = _state_file(args.name)
    if not state.exists():
        console.print(f"{args.name}: not running")
        return 1
    info = json.loads(state.read_text())
    running = EmbeddedPostgres.attach(info["base_dir"], info["port"]).is_running()
    console.print(f"{args.name}: {'running' if running else 'dead (run pg down)'} "
                  f"PostgreSQL {info['version']} {info['dsn']}")
    return 0 if running else 1


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("pg", help="start/stop an embedded PostgreSQL for manual use",
                            description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="pg_action", metavar="ACTION", required=True)
    for name, func, text in (("up", _up, "start (detached) and print the DSN"),
                             ("down", _down, "stop and remove files"),
                             ("status", _status, "is it running? exit 0 if so")):
        p = actions.add_parser(name, help=text)
        p.add_argument("--name", default="default", help="which server (default: default)")
        if name == "up":
            p.add_argument("--foreground", action="store_true",
                           help="run until Ctrl-C instead of detaching")
        p.set_defaults(func=func)
