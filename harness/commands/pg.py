"""`authstate-harness pg up|down|status`: a PostgreSQL for trying the other commands by hand.

`pg up` starts the embedded server detached and prints its DSN; `pg down` stops it and removes
its files. `pg up --foreground` runs until Ctrl-C instead (nothing outlives it). `pg status`
lists every server started this way (foreground ones too), or the one --name says. State
lives in a small JSON file per name in the user's runtime directory.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import tempfile
import threading
from pathlib import Path

from harness.commands._console import make_console
from harness.errors import ConfigError, ProvisioningError
from harness.infra.postgres.embedded import EmbeddedPostgres
from harness.infra.reaper import pid_alive

console = make_console()  # soft wrap: never break a DSN across lines


def _state_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"authstate-harness-{os.getuid()}"


def _state_file(name: str) -> Path:
    if not (name and len(name) <= 64 and name.replace("-", "").replace("_", "").isalnum()
            and name.isascii()):
        raise ConfigError(f"invalid server name {name!r}",
                          hint="use up to 64 letters, digits, - and _")
    return _state_dir() / f"pg-{name}.json"


def _write_state(state: Path, pg: EmbeddedPostgres, *, foreground: bool) -> None:
    state.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    state.write_text(json.dumps({"dsn": pg.dsn, "port": pg.port, "base_dir": str(pg.base_dir),
                                 "version": pg.version, "foreground": foreground,
                                 "owner_pid": os.getpid()}))


def _read_state(state: Path) -> dict[str, object] | None:
    try:
        info = json.loads(state.read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and {"dsn", "port", "base_dir"} <= set(info) else None


def _running(info: dict[str, object]) -> bool:
    return EmbeddedPostgres.attach(str(info["base_dir"]), int(info["port"])).is_running()


def _up(args: argparse.Namespace) -> int:
    state = _state_file(args.name)
    if state.exists():
        info = _read_state(state)
        if info is not None and _running(info):
            console.print(info["dsn"])
            console.print(f"[dim]already running ({args.name}); stop it with "
                          f"`authstate-harness pg down --name {args.name}`[/]", highlight=False)
            return 0
        if info is not None:  # a server that died: remove its files, not only its state
            EmbeddedPostgres.attach(str(info["base_dir"]), int(info["port"])).close()
            console.print(f"[dim]removed the files of the dead server {args.name} "
                          f"({info['base_dir']})[/]", highlight=False)
        state.unlink()
    pg = EmbeddedPostgres(detached=not args.foreground).start()
    if args.foreground:
        _write_state(state, pg, foreground=True)  # so `pg status` sees it
        console.print(pg.dsn)
        console.print(f"[dim]PostgreSQL {pg.version} running ({args.name}); Ctrl-C stops it "
                      "and removes its files[/]", highlight=False)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            pg.close()
            state.unlink(missing_ok=True)
        return 0
    _write_state(state, pg, foreground=False)
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
    info = _read_state(state)
    if info is None:
        state.unlink()
        raise ProvisioningError(f"the state file of {args.name!r} was unreadable; removed it",
                                hint="remove the server's authstate-pg-* folder by hand")
    if info.get("foreground") and _running(info) and pid_alive(info.get("owner_pid")):
        raise ConfigError(f"{args.name!r} runs in the foreground (pid {info.get('owner_pid')})",
                          hint="stop it with Ctrl-C in its terminal (or kill that pid)")
    EmbeddedPostgres.attach(str(info["base_dir"]), int(info["port"])).close()
    state.unlink()
    console.print(f"stopped {args.name} and removed {info['base_dir']}")
    return 0


def _status(args: argparse.Namespace) -> int:
    if args.name is None:  # every server `pg up` started
        states = sorted(_state_dir().glob("pg-*.json")) if _state_dir().is_dir() else []
        if not states:
            console.print("no server started with `pg up` is known")
            return 1
        alive = [_status_line(p.stem.removeprefix("pg-"), p) for p in states]
        return 0 if any(alive) else 1
    state = _state_file(args.name)
    if not state.exists():
        console.print(f"{args.name}: not running")
        return 1
    return 0 if _status_line(args.name, state) else 1


def _status_line(name: str, state: Path) -> bool:
    info = _read_state(state)
    if info is None:
        console.print(f"{name}: unreadable state file {state}")
        return False
    running = _running(info)
    mode = " (foreground)" if info.get("foreground") else ""
    console.print(f"{name}: {'running' if running else 'dead (run pg down)'}{mode} "
                  f"PostgreSQL {info.get('version')} {info['dsn']}", highlight=False)
    return running


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("pg", help="start/stop an embedded PostgreSQL for manual use",
                            description=__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="pg_action", metavar="ACTION", required=True)
    for name, func, text in (("up", _up, "start (detached) and print the DSN"),
                             ("down", _down, "stop and remove files"),
                             ("status", _status,
                              "list servers (or --name one): exit 0 if one is running")):
        p = actions.add_parser(name, help=text)
        p.add_argument("--name", default=None if name == "status" else "default",
                       help="which server (default: default; status: every server)")
        if name == "up":
            p.add_argument("--foreground", action="store_true",
                           help="run until Ctrl-C instead of detaching")
        p.set_defaults(func=func)
