"""Targets: the auth-state implementations the suites can run against.

Scenarios never import a store: they receive a *target* opened on a DSN (often one that goes
through the fault proxy), so the same suites test the reference store, the resilient store, or a
team's own store. A target is named by a spec string, which is all a child process needs to open
the same target again:

    reference                   PostgresAuthStore, the plain store shipped here
    resilient                   ResilientAuthStore (cache, write-ahead journal, circuit breaker)
    module.path:factory         a factory importable from sys.path
    path/to/file.py:factory     a factory in a file (relative to the current directory or the
                                repository root)
    node:path/to/store.js#name  a Node.js module exporting Baileys' `useXAuthState(companyId)`
                                (default export unless #name; .mjs/.cjs too), run in a sidecar
                                process (harness/node_target)

A factory is `async def factory(dsn: str, *, cache_dir: Path) -> store` (a plain function that
returns the store, or an awaitable of it, also works). The store has Baileys' auth-state surface:
`await store.load(company_id) -> state` with `state.creds` (dict), `await state.save_creds()`,
`await state.keys.get(type, ids) -> {id: value}` (missing ids omitted) and
`await state.keys.set({type: {id: value | None}})`; and `await store.close()`. Optional hooks
(see OPTIONAL_HOOKS) let the suites measure more.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

from harness.errors import ConfigError
from harness.paths import repo_root

REQUIRED_METHODS = ("load", "close")
OPTIONAL_HOOKS: Mapping[str, str] = {
    "flush": "flush(timeout) -> bool: the suites wait for it (True once every acknowledged "
             "write is in PostgreSQL) before they read the tables directly",
    "status": "status() -> dict: breaker state, journal depth and conflicts in chaos reports",
    "last_source": "last_source() -> 'db' | 'cache' | 'journal' | None: where the current "
                   "task's last operation was served from, recorded in the operation history",
    "keys.clear": "state.keys.clear(): the stateful suite also checks clearing a company's keys",
    "delete_company": "delete_company(company_id): the stateful suite also checks logouts",
    "companies": "companies() -> sorted company ids: the stateful suite checks it too",
    "failure": "failure() -> HarnessError | None: the target itself died (a Node.js sidecar "
               "crashed); a chaos scenario then stops with that error instead of measuring it",
}
SPEC_FORMS = ("reference, resilient, module.path:factory, path/to/file.py:factory or "
              "node:path/to/store.js[#export]")
FACTORY_SIGNATURE = "async def factory(dsn: str, *, cache_dir: Path) -> store"
_MODULE_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")


class KeyStoreLike(Protocol):
    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]: ...
    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None: ...


class AuthStateLike(Protocol):
    creds: dict[str, Any]
    keys: KeyStoreLike

    async def save_creds(self) -> None: ...


class AuthStateTarget(Protocol):
    """An open store: loads per-company auth state; closed once at the end."""

    async def load(self, company_id: str) -> AuthStateLike: ...
    async def close(self) -> None: ...


Factory = Callable[..., Any]  # (dsn, *, cache_dir) -> store | Awaitable[store]


@dataclass(frozen=True)
class TargetSpec:
    """A resolved target: `await spec.open(dsn, cache_dir=...)` gives an open store."""

    name: str  # short, for reports and figure names
    spec: str  # the string it was resolved from: hand it to a child process to resolve again
    description: str
    factory: Factory = field(repr=False, compare=False)
    # False for a store in another process (node:): in-process comparisons with raw asyncpg
    # would measure the process boundary more than the store, so those benchmarks do not apply.
    in_process: bool = True

    async def open(self, dsn: str, *, cache_dir: Path) -> AuthStateTarget:
        """Call the factory; refuse (ConfigError) what it returns if it is not a store."""
        opened = self.factory(dsn, cache_dir=Path(cache_dir))
        if inspect.isawaitable(opened):
            opened = await opened
        missing = [m for m in REQUIRED_METHODS if not callable(getattr(opened, m, None))]
        if missing:
            if "close" not in missing:
                await _maybe_await(opened.close())
            raise ConfigError(
                f"target {self.spec!r} returned a {type(opened).__name__}, which has no "
                f"{' and no '.join(m + '()' for m in missing)}",
                hint=f"the factory must return the open store ({FACTORY_SIGNATURE}), whose "
                     "load(company_id) gives Baileys' auth state and close() releases it")
        return opened


async def settle(store: object, *, within_s: float = 10.0) -> bool:
    """Wait until the store's acknowledged writes are in PostgreSQL: its `flush(timeout)` when it
    has one, else True (a store without flush writes through before it acknowledges)."""
    flush = getattr(store, "flush", None)
    if not callable(flush):
        return True
    return bool(await _maybe_await(flush(timeout=within_s)))


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


# -- built-in targets -----------------------------------------------------------------------------
async def _open_reference(dsn: str, *, cache_dir: Path) -> AuthStateTarget:
    """The reference store keeps nothing on disk: cache_dir is unused."""
    from harness.authstate import PostgresAuthStore

    return await PostgresAuthStore.open(dsn)


async def _open_resilient(dsn: str, *, cache_dir: Path) -> AuthStateTarget:
    try:
        from harness.authstate import ResilientAuthStore  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ConfigError(f"the resilient store cannot be imported: {exc}",
                          hint="use --target reference, or update this checkout") from None
    return await ResilientAuthStore.open(dsn, cache_dir=cache_dir)


BUILTIN_TARGETS: Mapping[str, tuple[str, Factory]] = {
    "reference": ("PostgresAuthStore: the plain asyncpg store shipped here; fails closed while "
                  "PostgreSQL is away", _open_reference),
    "resilient": ("ResilientAuthStore: the reference store with caches, a write-ahead journal "
                  "and a circuit breaker; keeps sessions working while PostgreSQL is away",
                  _open_resilient),
}


# -- resolution -----------------------------------------------------------------------------------
def resolve_target(spec: str) -> TargetSpec:
    """The target a spec names; ConfigError (with a hint) for anything that is not one."""
    spec = (spec or "").strip()
    if spec.startswith("node:"):  # a JavaScript store through a sidecar: harness/node_target
        from harness.node_target import resolve_node_target

        name, description, factory = resolve_node_target(spec)
        return TargetSpec(name, spec, description, factory, in_process=False)
    if spec in BUILTIN_TARGETS:
        description, factory = BUILTIN_TARGETS[spec]
        return TargetSpec(spec, spec, description, factory)
    if ":" not in spec:
        hint = f"use {SPEC_FORMS}"
        if spec.endswith(".py"):
            hint = f"name the factory in the file: {spec}:open_store ({FACTORY_SIGNATURE})"
        raise ConfigError(f"unknown target {spec!r}", hint=hint)
    where, attr = spec.rsplit(":", 1)
    if not where or not attr:
        raise ConfigError(f"target {spec!r} names no {'factory' if where else 'module or file'}",
                          hint=f"use {SPEC_FORMS}")
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = _find_file(where, spec)
        module, origin = _load_file(path), str(path)
        name = f"{path.name}:{attr}"
    else:
        module, origin = _import_module(where, spec), where
        name = spec
    factory = _factory(module, attr, origin, spec)
    doc = inspect.getdoc(factory)
    description = doc.splitlines()[0] if doc else f"factory {attr} from {origin}"
    return TargetSpec(name, spec, description, factory)


def _find_file(where: str, spec: str) -> Path:
    given = Path(where).expanduser()
    candidates = [given] if given.is_absolute() else [Path.cwd() / given, repo_root() / given]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = " or ".join(str(c) for c in dict.fromkeys(candidates))
    raise ConfigError(f"target {spec!r}: no such file {where} (looked for {looked})",
                      hint="give the path of the Python file holding the factory, relative to "
                           "the current directory or the repository root")


def _load_file(path: Path) -> ModuleType:
    """Import a file under a module name unique to its path (two `targets.py` never collide);
    loaded once per process."""
    module_name = "_authstate_target_" + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    if module_name in sys.modules:
        return sys.modules[module_name]
    import_spec = importlib.util.spec_from_file_location(module_name, path)
    if import_spec is None or import_spec.loader is None:
        raise ConfigError(f"cannot import {path} as Python",
                          hint="a file target must be a .py file: path/to/file.py:factory")
    module = importlib.util.module_from_spec(import_spec)
    sys.modules[module_name] = module
    try:
        import_spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(module_name, None)
        if isinstance(exc, Exception):
            raise _import_failed(str(path), exc,
                                 f"python -c \"import runpy; runpy.run_path('{path}')\"") from exc
        raise
    return module


def _import_module(where: str, spec: str) -> ModuleType:
    if not _MODULE_PATH.fullmatch(where):
        raise ConfigError(f"target {spec!r}: {where!r} is neither a module path nor a .py file",
                          hint=f"use {SPEC_FORMS}")
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        if exc.name and (where == exc.name or where.startswith(exc.name + ".")):
            raise ConfigError(
                f"target {spec!r}: no module named {exc.name!r}",
                hint="check the spelling and that the module is importable from here (installed "
                     "in this environment or on PYTHONPATH); for a file use "
                     "path/to/file.py:factory") from None
        raise _import_failed(where, exc, f"python -c 'import {where}'") from exc
    except Exception as exc:
        raise _import_failed(where, exc, f"python -c 'import {where}'") from exc


def _import_failed(origin: str, exc: Exception, command: str) -> ConfigError:
    """A syntax error names file:line (of the file that has it, maybe one the target imports);
    anything else names the exception and how to see its traceback."""
    if isinstance(exc, SyntaxError):
        return ConfigError(f"syntax error in {exc.filename or origin}:{exc.lineno}: {exc.msg}",
                           hint="fix the target's source; the suites import it as it is")
    return ConfigError(f"importing the target {origin} failed: {type(exc).__name__}: {exc}",
                       hint=f"run {command} to see the traceback")


def _factory(module: ModuleType, attr: str, origin: str, spec: str) -> Factory:
    value: Any = module
    for part in attr.split("."):
        if not hasattr(value, part):
            names = sorted(n for n, v in vars(module).items()
                           if inspect.isfunction(v) and not n.startswith("_")
                           and v.__module__ == module.__name__)
            choices = f"; functions it defines: {', '.join(names[:8])}" if names else ""
            raise ConfigError(f"target {spec!r}: {origin} has no attribute {attr!r}",
                              hint=f"define {FACTORY_SIGNATURE.replace('factory', attr, 1)} "
                                   f"there, or name another{choices}")
        value = getattr(value, part)
    if not callable(value):
        raise ConfigError(f"target {spec!r}: {attr} is not callable (type {type(value).__name__})",
                          hint=f"name a factory: {FACTORY_SIGNATURE}")
    try:
        inspect.signature(value).bind("dsn", cache_dir=Path())
    except TypeError as exc:
        raise ConfigError(f"target {spec!r}: {attr} cannot be called as "
                          f"factory(dsn, *, cache_dir=...): {exc}",
                          hint=f"give it this signature: {FACTORY_SIGNATURE}") from None
    except ValueError:  # no signature to inspect (some builtins): find out when it is called
        pass
    return value
