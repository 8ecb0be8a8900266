"""The main job: provision, run the suites, check the gates, write the report, say the verdict.

Whatever happens after the run folder exists -- a failing test, a missed gate, PostgreSQL that
cannot start, Ctrl-C -- a report.json/report.md pair is written that says so, and everything
started is stopped (PostgreSQL by its context manager, the child pytest by `interrupt`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from harness.config import HarnessConfig, Profile, load_config
from harness.dsn import check_dsn, redact
from harness.errors import ConfigError, HarnessError
from harness.infra.postgres import provision_postgres
from harness.paths import checkout_root, project_dir, suite_root
from harness.report import environment
from harness.report.checks import Check, gate_checks, judged, suite_checks, unmeasurable
from harness.report.index_page import write_index
from harness.report.redact import scrub
from harness.report.results import read_results
from harness.report.schema import STATUS_EXIT, benchmark_stats, build_report, run_status
from harness.report.writer import scrub_junit, write_report
from harness.runner.outcomes import RunOutcomes
from harness.runner.progress import RunProgress
from harness.runner.pytest_session import PYTEST_EXIT, Artifacts, ChaosArgs, PytestSession
from harness.runner.suites import SUITES, Suite


@dataclass
class RunOptions:
    profile: Profile
    suites: Sequence[Suite]
    dsn: str | None = None
    out_dir: Path | None = None
    gate_overrides: Sequence[str] = ()
    pytest_args: Sequence[str] = ()
    target: str | None = None  # --target SPEC; None: each suite's default
    scenarios: Sequence[str] = ()  # --scenario NAME...; empty: the profile's chaos scenarios
    live: bool = True
    argv: Sequence[str] = field(default_factory=lambda: list(sys.argv))
    seed: int | None = None  # --seed: replay the chaos repetitions of an earlier run
    undecided: str | None = None  # --undecided warn|fail (else the pyproject setting)


@dataclass
class RunResult:
    exit_code: int
    status: str
    out_dir: Path
    report: dict[str, Any]
    checks: list[Check]


def check_target(spec: str | None) -> str | None:
    """The spec to hand to the child (as the resolver normalised it); a bad one fails here."""
    if spec is None:
        return None
    from harness.targets import resolve_target  # imports the user's factory module: only now

    resolved = resolve_target(spec).spec
    check_node_export(resolved)
    return resolved


def check_node_export(spec: str) -> None:
    """A `node:` spec's export is looked up now, in a second, not after PostgreSQL, the fault
    proxy and the suites' setup (Python factories are checked by resolving them)."""
    from harness.node_target import is_node_spec

    if is_node_spec(spec):
        from harness.node_target.npm_cache import ensure_dependencies
        from harness.node_target.spec import check_export, parse

        module, export = parse(spec)
        check_export(spec, module, export, ensure_dependencies(module))


def check_scenarios(names: Sequence[str], suites: Sequence[Suite]) -> tuple[str, ...]:
    """`--scenario` names, validated against the chaos catalog (and the chaos suite selected)."""
    if not names:
        return ()
    from harness.chaos.catalog import SCENARIOS

    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise ConfigError(f"unknown chaos scenario(s): {', '.join(unknown)}",
                          hint=f"choose from: {', '.join(SCENARIOS)}")
    if not any(s.name == "chaos" for s in suites):
        raise ConfigError("--scenario picks chaos scenarios, but the chaos suite is not selected",
                          hint="add --suite chaos (or drop --suite to run the default suites)")
    return tuple(dict.fromkeys(names))


def chaos_args(profile: Profile, target: str | None, scenarios: Sequence[str],
               suites: Sequence[Suite], seed: int | None = None) -> ChaosArgs | None:
    """The chaos suite's options for a run profile (None when chaos is not selected).

    The `ci` profile adds the plain reference store as a contrast row, but only when the
    resilient store is what is tested: the row shows what the resilience layer buys.
    `seed`: `--seed`, else a fresh one, so every run draws new repetitions and the report
    says how to replay them.
    """
    if not any(s.name == "chaos" for s in suites):
        return None
    default = next(s.default_target for s in suites if s.name == "chaos")
    contrast = "reference" if profile.chaos_contrast and target in (None, default) else None
    return ChaosArgs(profile=profile.name, scenarios=tuple(scenarios), contrast=contrast,
                     seed=secrets.randbelow(2**31) if seed is None else seed)


def check_suite_paths(root: Path, suites: Sequence[Suite]) -> None:
    missing = [f"{s.name}: {p}" for s in suites for p in s.paths if not (root / p).exists()]
    if missing:
        where = "clone" if root == checkout_root() else "installed package"
        raise ConfigError(f"suite folder(s) missing in {root}: {', '.join(missing)}",
                          hint=f"the {where} is incomplete: reinstall it (a wheel carries the "
                               "suites in harness/_suites/), or pick other suites with --suite")


def run_stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def prepare_out_dir(requested: Path | None, root: Path, stamp: str) -> Path:
    """`reports/<stamp>/` (made unique), or `--out DIR`: new, empty, or an earlier run's folder."""
    if requested is None:
        base = root / "reports" / stamp
        out, n = base, 1
        while out.exists():
            n += 1
            out = base.with_name(f"{stamp}-{n}")
    else:
        out = requested
        if out.exists() and not out.is_dir():
            raise ConfigError(f"--out {out} is a file", hint="give a directory for the run folder")
        if out.is_dir() and any(out.iterdir()) and not (out / "report.json").exists():
            raise ConfigError(f"--out {out} is not empty and holds no earlier report",
                              hint="choose a new or empty directory (or a previous run folder, "
                                   "which is overwritten)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):  # an existing folder may still be read-only
            pass
    except OSError as exc:
        raise ConfigError(f"cannot write the run folder {out}: {exc.strerror or exc}",
                          hint="choose a writable --out DIR") from None
    for stale in ("report.json", "report.md", "report.html", "pytest.log", "events.jsonl",
                  "junit.xml", "results.json", "bench.json", "benchmark.json"):
        with contextlib.suppress(FileNotFoundError):
            (out / stale).unlink()
    return out


class MainJob:
    def __init__(self, options: RunOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.root = suite_root()  # conftest.py, fixtures/, scenarios/: a clone or the package
        self.project = project_dir()  # reports/, the gates' pyproject.toml, relative targets
        self.started = datetime.now(UTC)
        self._t0 = time.monotonic()
        # Read gates before starting anything: a typo in a gate must fail fast, not after a run.
        self.config: HarnessConfig = load_config(self.project / "pyproject.toml",
                                                 options.gate_overrides,
                                                 undecided=options.undecided)
        check_suite_paths(self.root, options.suites)
        self.dsn = options.dsn or os.environ.get("AUTHSTATE_DSN")
        if self.dsn:  # a bad port or scheme fails here, before the run folder exists
            self.dsn = check_dsn(self.dsn)  # a key=value DSN becomes the equivalent URL
        self.target = check_target(options.target or self.config.target)
        self.chaos = chaos_args(options.profile, self.target,
                                check_scenarios(options.scenarios, options.suites),
                                options.suites, options.seed)
        self.out_dir = prepare_out_dir(options.out_dir, self.project, run_stamp(self.started))
        self.artifacts = Artifacts(self.out_dir)
        self.outcomes = RunOutcomes(options.suites)
        self.environment = environment.collect(checkout_root())
        self.error: str | None = None
        self.interrupted = False
        self.pytest_exit: int | None = None

    def run(self) -> RunResult:
        failure: BaseException | None = None
        try:
            self._provision_and_test()
        except HarnessError as exc:
            self.error = exc.message + (f" ({exc.hint})" if exc.hint else "")
            failure = exc
        except KeyboardInterrupt as exc:
            self.interrupted = True
            failure = exc
        except Exception as exc:  # a bug: still leave a report that says so, then re-raise
            self.error = f"unexpected {type(exc).__name__}: {exc}"
            failure = exc
        result = self._finish()
        if failure is not None:
            raise failure  # the CLI prints it and exits 2 / 130; the report is already written
        return result

    def _provision_and_test(self) -> None:
        with contextlib.ExitStack() as stack:
            with self._status(f"connecting to PostgreSQL at {redact(self.dsn)}" if self.dsn
                              else "starting PostgreSQL"):
                server = stack.enter_context(provision_postgres(self.options.dsn))
            self.environment["postgres"] = environment.postgres_facts(
                server.kind, server.version, server.dsn)
            self.console.print(f"PostgreSQL {server.version} ({server.kind}); profile "
                               f"{self.options.profile.name}; report in "
                               f"{self._shown(self.out_dir)}", highlight=False)
            self._run_pytest(server.dsn, server.kind)
            if self.pytest_exit not in (0, None) and not self.interrupted:
                self._check_database(server.dsn)
                if self.error is None:
                    self._harness_errors_in_tests()

    def _harness_errors_in_tests(self) -> None:
        """Tests that a failure of the harness itself ended (a server could not be started, a
        bad spec; see harness.errors.is_harness_failure) mean the harness could not do its job:
        exit 2 naming the first, not "n tests failed", which would read as a verdict about the
        store. What the target did (threw, refused, hung, crashed its Node.js process) never
        lands here: those tests failed on a finding, and the run exits 1."""
        errors = self.outcomes.harness_errors
        if errors:
            first = errors[0]
            more = f" (and {len(errors) - 1} more tests)" if len(errors) > 1 else ""
            self.error = (f"{first['type']} in {first['nodeid']}{more}: {first['message']}")

    def _check_database(self, dsn: str) -> None:
        """After failures: is PostgreSQL still there? Tests failing because the database went
        away (stopped, crashed, network gone) are a harness error, not findings about the
        store; the report says so instead of "10 of 103 tests failed"."""
        problem = database_gone(dsn)
        if problem:
            self.error = (f"PostgreSQL at {redact(dsn)} went away during the run ({problem}): "
                          "the failures after that are about the database, not the store "
                          "under test (check the server -- was it stopped or restarted? -- "
                          "and run again; pytest.log shows when tests started failing)")

    @contextlib.contextmanager
    def _status(self, text: str) -> Iterator[None]:
        if self.options.live:
            with self.console.status(text + " ..."):
                yield
        else:
            self.console.print(text + " ...", highlight=False)
            yield

    def _run_pytest(self, dsn: str, pg_kind: str) -> None:
        session = PytestSession(
            root=self.root, cwd=self.project, suites=self.options.suites,
            artifacts=self.artifacts, pg_dsn=dsn,
            hypothesis_profile=self.options.profile.hypothesis_profile, pg_kind=pg_kind,
            run_profile=self.options.profile.name, target=self.target, chaos=self.chaos,
            gate_overrides=self._child_gates(), extra_args=self.options.pytest_args)
        session.start()
        with RunProgress(self.console, self.outcomes, live=self.options.live) as progress:
            try:
                self.pytest_exit = session.follow(progress.update)
            except KeyboardInterrupt:
                self.interrupted = True
                session.interrupt()
                with contextlib.suppress(Exception):
                    self.pytest_exit = session.follow(progress.update)
                raise
        code = self.pytest_exit
        if code == 2:
            self.interrupted = True
        elif code not in (0, 1):
            tail = "\n".join(list(session.log_tail)[-15:])
            self.error = f"pytest stopped: {PYTEST_EXIT.get(code, f'exit {code}')}\n{tail}"

    def _child_gates(self) -> list[str]:
        """`--gate` arguments for the child, which reads gates from the suite root's
        pyproject.toml: for an installed copy that is not the project's, so the project's own
        values travel on the command line too."""
        if self.project == self.root:
            return list(self.options.gate_overrides)
        return [f"{name}={value!r}" for name, value in self.config.gates.items()
                if self.config.sources[name] != "default"]

    def _finish(self) -> RunResult:
        results = read_results(self.artifacts.results)
        if results.problem and not self.error:
            self.error = results.problem
        suites = [s.summary() for s in self.outcomes.suites.values()]
        # a suite --pytest-args filtered down to nothing did not run: its gates do not apply
        deselected = [s.name for s in suites if self.options.pytest_args and not s.tests
                      and self.pytest_exit is not None and not self.interrupted]
        kept = [s.name for s in suites if s.name not in deselected]
        # stopped before any suite started (PostgreSQL never reached, Ctrl-C while provisioning):
        # no suite ran, so there is no suite to call passed and no suite row of zeros to show
        never_ran = self.pytest_exit is None and not any(s.tests for s in suites)
        if never_ran:
            suites = []
        checks = suite_checks(suites, deselected=deselected)
        if self.pytest_exit is not None:  # gates are judged only once the suites ran
            checks += gate_checks(self.config, results.figures, kept, deselected=deselected,
                                  selected=kept)
            if not self.error and not self.interrupted:
                self.error = unmeasurable(suites, checks)
        status = run_status(checks, error=self.error, interrupted=self.interrupted)
        if status == "passed" and self.options.pytest_args and not any(s.tests for s in suites):
            status, self.error = "error", "the pytest arguments deselected every test"
        exit_code = STATUS_EXIT[status]
        finished = datetime.now(UTC)
        run = {
            "id": self.out_dir.name, "started_at": self.started.isoformat(),
            "finished_at": finished.isoformat(),
            "duration_s": round(time.monotonic() - self._t0, 3),
            "command": " ".join(self.options.argv), "profile": self.options.profile.name,
            "suites": [s.name for s in self.options.suites], "status": status,
            "exit_code": exit_code, "pytest_exit": self.pytest_exit,
            "error": scrub(self.error) if self.error else None,
        }
        config = {"profile": {"name": self.options.profile.name,
                              "hypothesis_profile": self.options.profile.hypothesis_profile,
                              "description": self.options.profile.description},
                  "suites": {s.name: list(s.paths) for s in self.options.suites},
                  "gates": self.config.describe(),
                  "judging": self.config.judging.describe(),
                  "target": {"spec": self.target,
                             "by_suite": {s.name: self.target or s.default_target
                                          for s in self.options.suites}},
                  "chaos": None if self.chaos is None else {
                      "profile": self.chaos.profile, "scenarios": list(self.chaos.scenarios),
                      "contrast": self.chaos.contrast, "seed": self.chaos.seed},
                  "pytest_args": list(self.options.pytest_args),
                  "scope": self._scope(deselected, results.section("chaos"))}
        artifacts = {key: path.name for key, path in (
            ("report_md", self.out_dir / "report.md"),
            ("report_html", self.out_dir / "report.html"),
            ("pytest_log", self.artifacts.pytest_log),
            ("junit", self.artifacts.junit), ("events", self.artifacts.events),
            ("results", self.artifacts.results),
            ("benchmark_stats", self.artifacts.benchmark_stats)) if path.exists()
            or key in ("report_md", "report_html")}
        report = build_report(run=run, environment=self.environment, config=config,
                              suites=suites, checks=checks,
                              figures=[judged(f, self.config) for f in results.figures],
                              stats=benchmark_stats(self.artifacts.benchmark_stats),
                              chaos=results.section("chaos"), artifacts=artifacts,
                              facts=self.outcomes.facts,
                              load=(results.section("load") or [None])[-1],
                              signal=results.section("signal"))
        self._scrub_artifacts()
        write_report(self.out_dir, report)
        if self.out_dir.parent == self.project / "reports":  # the default place: its index
            with contextlib.suppress(OSError):
                write_index(self.out_dir.parent)
        return RunResult(exit_code, status, self.out_dir, report, checks)

    def _scope(self, deselected: list[str], chaos: list[dict[str, Any]]) -> dict[str, Any]:
        """What this run did not cover, for the verdict to state: suites not selected, suites
        --pytest-args filtered to nothing, chaos scenarios not run."""
        selected = {s.name for s in self.options.suites}
        scope: dict[str, Any] = {
            "suites_not_run": {name: suite.description for name, suite in SUITES.items()
                               if name not in selected},
            "suites_deselected": deselected, "chaos_scenarios_not_run": []}
        if "chaos" in selected and "chaos" not in deselected:
            from harness.chaos.catalog import SCENARIOS

            ran = {str(item.get("name")) for item in chaos}
            scope["chaos_scenarios_not_run"] = [n for n in SCENARIOS if n not in ran]
        return scope

    def _scrub_artifacts(self) -> None:
        """junit.xml repeats failure text (Hypothesis examples); scrub it like pytest.log."""
        if self.artifacts.junit.exists():
            scrub_junit(self.artifacts.junit)

    def _shown(self, path: Path) -> str:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(Path.cwd()))
        return str(path)


def database_gone(dsn: str, timeout: float = 5.0) -> str | None:
    """Why PostgreSQL at `dsn` cannot be reached now, or None when it answers `SELECT 1`
    (or refuses only for a reason that is not "gone", e.g. bad credentials)."""
    import asyncio

    import asyncpg

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=timeout)
        try:
            await conn.fetchval("SELECT 1", timeout=timeout)
        finally:
            await conn.close(timeout=timeout)

    try:
        asyncio.run(probe())
    except ConnectionRefusedError:
        return "connection refused"
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except asyncpg.CannotConnectNowError:
        return "the server is starting up, shutting down or in crash recovery"
    except asyncpg.PostgresError as exc:
        if (exc.sqlstate or "").startswith(("08", "57P")):
            return f"{type(exc).__name__}: {exc}"
        return None
    except (OSError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def live_output(console: Console) -> bool:
    """Live bars only for a person at a terminal; CI logs get plain lines."""
    return console.is_terminal and not os.environ.get("CI")
