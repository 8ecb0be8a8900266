"""`node:path/to/store.js[#exportName]`: resolving the spec and opening the target.

Resolving checks the file, Node.js (>= 20.6: the sidecar registers a module resolve hook) and
installs the module's npm dependencies on first use (npm_cache.py), so a run fails before any
test when the target cannot work. Opening creates the origin tables if they are missing (what a
team's migrations do; never drops or rewrites anything), then starts the sidecar with the run's
database in `DATABASE_URL` and the libpq variables node-postgres reads.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from harness.errors import ConfigError
from harness.node_target import native
from harness.node_target.errors import NodeUnavailable
from harness.node_target.npm_cache import ensure_dependencies
from harness.node_target.sidecar import Sidecar
from harness.node_target.target import NodeTarget
from harness.paths import repo_root

log = logging.getLogger("harness.node_target")

PREFIX = "node:"
CHECK_JS = Path(__file__).with_name("check_export.mjs")
CHECK_TIMEOUT_S = 30.0
# Import errors that do not depend on the environment the module runs in: the run would fail
# on them too, only later. Anything else (a module that connects while it is imported) is left
# for the sidecar to report with the run's database.
DEFINITE_IMPORT_ERRORS = frozenset({"SyntaxError", "ERR_MODULE_NOT_FOUND"})
# What the check's module sees in place of the run's database (not known yet): a host that
# never resolves (RFC 6761), so a module that connects while imported fails fast, touching
# nothing (a plain Pool() would otherwise reach whatever PostgreSQL listens on localhost).
CHECK_DATABASE_URL = "postgresql://authstate-harness-export-check.invalid/none"
DEFAULT_EXPORT = "default"
EXTENSIONS = (".js", ".mjs", ".cjs")
MIN_NODE = (20, 6)
CALL_TIMEOUT_ENV = "AUTHSTATE_NODE_CALL_TIMEOUT_S"
DEFAULT_CALL_TIMEOUT_S = 20.0
SPEC_FORM = "node:path/to/store.js[#exportName] (.js, .mjs or .cjs; default export: 'default')"


def is_node_spec(spec: str) -> bool:
    return spec.startswith(PREFIX)


def parse(spec: str) -> tuple[Path, str]:
    """(module file, export name) of a `node:` spec; ConfigError if the file is not there."""
    body = spec[len(PREFIX):].strip()
    where, _, export = body.partition("#")
    export = export.strip() or DEFAULT_EXPORT
    if not where:
        raise ConfigError(f"target {spec!r} names no module", hint=f"use {SPEC_FORM}")
    if not re.fullmatch(r"[A-Za-z_$][\w$]*", export):
        raise ConfigError(f"target {spec!r}: {export!r} is not a JavaScript export name",
                          hint=f"use {SPEC_FORM}")
    if not where.endswith(EXTENSIONS):
        raise ConfigError(f"target {spec!r}: {where} is not a .js, .mjs or .cjs file",
                          hint=f"use {SPEC_FORM}")
    given = Path(where).expanduser()
    candidates = [given] if given.is_absolute() else [Path.cwd() / given, repo_root() / given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve(), export
    looked = " or ".join(str(c) for c in dict.fromkeys(candidates))
    raise ConfigError(f"target {spec!r}: no such file {where} (looked for {looked})",
                      hint="give the path of the store module, relative to the current "
                           "directory or the repository root")


def node_binary() -> str:
    """The `node` on PATH if it is new enough; NodeUnavailable otherwise."""
    return node_info()[0]


@functools.cache
def node_info() -> tuple[str, str]:
    """(path, version) of the `node` on PATH; NodeUnavailable if missing or too old."""
    node = shutil.which("node")
    if node is None:
        raise NodeUnavailable("node is not on PATH: a node: target needs Node.js")
    # NativeProcess: this may run in a Locust process's asyncio thread, where gevent's
    # patched subprocess cannot start children
    proc = native.NativeProcess([node, "--version"], env=dict(os.environ), reply_pipe=False)
    proc.stdin.close()
    with proc.stdout:
        out = proc.stdout.read().decode("utf-8", "replace").strip()
    while proc.poll() is None:
        native.sleep(0.005)
    match = re.match(r"v(\d+)\.(\d+)", out)
    if match is None or (int(match.group(1)), int(match.group(2))) < MIN_NODE:
        raise NodeUnavailable(f"node {out or '(unknown version)'} is older than "
                              f"{'.'.join(map(str, MIN_NODE))}")
    return node, out


def call_timeout_s() -> float:
    raw = os.environ.get(CALL_TIMEOUT_ENV)
    if not raw:
        return DEFAULT_CALL_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(f"{CALL_TIMEOUT_ENV}={raw!r} is not a positive number of seconds",
                          hint=f"unset it for the default ({DEFAULT_CALL_TIMEOUT_S:g} s)")
    return value


def database_env(dsn: str) -> dict[str, str]:
    """DATABASE_URL and the libpq variables (PGHOST...) node-postgres reads, from a URL DSN
    (PGOPTIONS from its `options`: a durable reader's read-only sessions)."""
    env = {"DATABASE_URL": dsn}
    parts = urlsplit(dsn)
    if parts.scheme.startswith("postgres"):
        options = dict(parse_qsl(parts.query)).get("options")
        for name, value in (("PGHOST", parts.hostname), ("PGPORT", parts.port),
                            ("PGUSER", parts.username), ("PGPASSWORD", parts.password),
                            ("PGDATABASE", parts.path.lstrip("/"))):
            if value:
                env[name] = unquote(str(value))
        if options:
            env["PGOPTIONS"] = options
    return env


async def open_node_target(dsn: str, *, cache_dir: Path, module: Path, export: str,
                           deps_dir: Path | None, label: str,
                           migrate_schema: bool = True) -> NodeTarget:
    """The factory behind a `node:` TargetSpec: schema, then a started sidecar."""
    if migrate_schema:
        await _ensure_schema(dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(database_env(dsn))
    env["AUTHSTATE_CACHE_DIR"] = str(cache_dir)  # for a module that keeps files (its choice)
    if deps_dir is not None:
        env["AUTHSTATE_NODE_DEPS"] = str(deps_dir)
    password = urlsplit(dsn).password
    sidecar = await Sidecar.start(
        module, export, env=env, cwd=module.parent, label=label,
        call_timeout_s=call_timeout_s(), node=node_binary(),
        secrets=tuple(s for s in (password, password and unquote(password)) if s))
    return NodeTarget(sidecar, label)


async def _ensure_schema(dsn: str) -> None:
    import asyncpg

    from harness.authstate.schema import migrate

    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        await migrate(conn)
    finally:
        await conn.close()


def check_export(spec: str, module: Path, export: str, deps_dir: Path | None) -> None:
    """Import the module in a short-lived node (no database, no sidecar) and find `export`
    there, so that a missing `#export` or a syntax error stops the run before PostgreSQL and
    the suites are set up (the sidecar would find it too, tens of seconds later).

    ConfigError for a missing or non-function export, a syntax error or a module or package
    that cannot be found; any other import failure, or no answer in time, is left to the
    sidecar (logged), since it may depend on the database the check does not give."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(DATABASE_URL=CHECK_DATABASE_URL, PGHOST="authstate-harness-export-check.invalid",
               AUTHSTATE_EXPORT_CHECK="1")
    env.pop("AUTHSTATE_NODE_DEPS", None)
    if deps_dir is not None:
        env["AUTHSTATE_NODE_DEPS"] = str(deps_dir)
    try:
        done = subprocess.run([node_binary(), str(CHECK_JS), str(module), export],
                              cwd=module.parent, env=env, capture_output=True, text=True,
                              timeout=CHECK_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        log.warning("importing %s took over %g s; its export is checked when the run starts",
                    module, CHECK_TIMEOUT_S)
        return
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    try:
        answer = json.loads(lines[-1])
    except (IndexError, ValueError):
        log.warning("could not check %s before the run (node exit %s): %s", module,
                    done.returncode, done.stderr.strip()[-300:])
        return
    if answer.get("ok"):
        return
    error = answer.get("error") or {}
    if answer.get("stage") == "export":
        functions = error.get("functions") or []
        raise ConfigError(
            f"target {spec!r}: {error.get('message')}",
            hint="name an exported function: node:path/to/store.js#exportName"
                 + (f" (it exports {', '.join(functions[:8])})" if functions
                    else " (it exports no function)"))
    name, code = str(error.get("name") or "Error"), str(error.get("code") or "")
    if name in DEFINITE_IMPORT_ERRORS or code in DEFINITE_IMPORT_ERRORS:
        where = str(error.get("where") or "").strip()
        raise ConfigError(f"target {spec!r}: node cannot import {module}: {name}: "
                          f"{error.get('message')}" + (f"\n{where}" if where else ""),
                          hint="fix the module so that node can import it (`node " +
                               f"{module}` shows the same error)")
    log.info("importing %s without the run's database failed (%s: %s); the sidecar imports it "
             "again with the database once the run starts", module, name, error.get("message"))


def resolve(spec: str) -> tuple[str, str, Path, str, Path | None]:
    """(name, description, module, export, deps dir) of a `node:` spec, installing the module's
    npm dependencies on first use. ConfigError (NodeUnavailable) when it cannot run here."""
    module, export = parse(spec)
    node_binary()
    deps_dir = ensure_dependencies(module)
    try:
        shown = module.relative_to(repo_root())
    except ValueError:
        shown = module
    name = f"node:{module.parent.name}/{module.name}" + ("" if export == DEFAULT_EXPORT
                                                         else f"#{export}")
    description = (f"Node.js module {shown} (export {export}) through a sidecar process, "
                   f"node {node_info()[1]}")
    return name, description, module, export, deps_dir
