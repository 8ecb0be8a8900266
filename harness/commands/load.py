"""`authstate-harness load`: a Locust load run with provisioning, live progress, report, gates.

Provisions like `run` (PostgreSQL: --dsn / AUTHSTATE_DSN > Docker > embedded; the fault proxy
chain), measures the gevent-asyncio bridge against pure asyncio, runs Locust (one user per
company) through the fault proxy, optionally with a fault, and writes a run folder: report.json
(with `load`), report.md (latency table), Locust's own locust.html / locust_*.csv / locust.log,
the merged HDR result and, with a fault, the operation histories. Exit 0 every gate met, 1 a
gate missed (or writes lost), 2 harness error, 130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness.commands._console import make_console
from harness.config import load_config
from harness.errors import ConfigError, HarnessError
from harness.paths import checkout_root, project_dir

console = make_console()
_DURATION = re.compile(r"(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?")
_UNITS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "ms": 0.001}


def parse_duration(text: str) -> float:
    match = _DURATION.fullmatch((text or "").strip())
    if not match:
        raise ConfigError(f"--duration {text!r} is not a duration",
                          hint="e.g. --duration 60s, 90, 2m")
    seconds = float(match["n"]) * _UNITS[match["unit"]]
    if seconds < 5:
        raise ConfigError(f"--duration {text} is under 5 s",
                          hint="give the companies time to set up and run: e.g. --duration 30s")
    return seconds


def parse_companies(text: str) -> list[int]:
    try:
        counts = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        counts = []
    if not counts or any(c < 1 for c in counts):
        raise ConfigError(f"--companies {text!r} is not a count or a list of counts",
                          hint="e.g. --companies 100, or --companies 10,100,1000 (scale curve)")
    return counts


class LiveView:
    """Users, calls/s, p99 of the last second, failures: a bar on a terminal, lines in logs."""

    def __init__(self, duration_s: float, *, live: bool) -> None:
        self.live = live
        self.duration_s = duration_s
        self._progress = Progress(SpinnerColumn(), TextColumn("[bold]load"), BarColumn(),
                                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                  console=console, disable=not live)
        self._task = self._progress.add_task("load", total=duration_s, status="starting")
        self._last_line = 0.0

    def __enter__(self) -> LiveView:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def update(self, doc: dict[str, Any]) -> None:
        started = doc.get("started_wall")
        elapsed = doc["wall"] - started if started else 0.0
        status = (f"{doc.get('users', 0)} users  {doc.get('ops_per_s', 0):.0f} calls/s  "
                  f"p99 {doc.get('p99_ms') if doc.get('p99_ms') is not None else '-'} ms  "
                  f"{doc.get('failures', 0)} failed")
        self._progress.update(self._task, completed=min(elapsed, self.duration_s), status=status)
        if not self.live and time.monotonic() - self._last_line >= 10.0:
            self._last_line = time.monotonic()
            console.print(f"load {elapsed:5.0f}s  {status}", highlight=False)

    def say(self, line: str) -> None:
        console.print(escape(line), highlight=False)


def latency_table(section: dict[str, Any]) -> Table:
    from harness.report.load_table import HEADER, console_title, op_rows

    table = Table(title=console_title(section), title_justify="left", box=None, pad_edge=False)
    for name in HEADER:
        table.add_column(name, justify="left" if name == "operation" else "right")
    for row in op_rows(section["ops"]):
        table.add_row(*(escape(c) for c in row))
    return table


def load_lines(section: dict[str, Any]) -> list[str]:
    """The steady state the gates judge and the fault under load, named (below the table)."""
    from harness.report.load_table import console_lines

    return console_lines(section)


def _run(args: argparse.Namespace) -> int:
    from harness.faults.provision import provision_toxiproxy
    from harness.infra.postgres import provision_postgres
    from harness.load.faults import parse_fault
    from harness.load.profiles import PROFILES, load_profile
    from harness.load.runner import LoadPlan
    from harness.load.session import LoadJob, run_job
    from harness.report import environment
    from harness.report.checks import Check, gate_checks, judged
    from harness.report.schema import STATUS_EXIT, build_report, run_status
    from harness.report.writer import write_report
    from harness.runner.job import check_node_export, prepare_out_dir, run_stamp
    from harness.targets import resolve_target

    root = project_dir()  # reports/ and the gates' pyproject.toml
    started = datetime.now(UTC)
    t0 = time.monotonic()
    if args.dsn or os.environ.get("AUTHSTATE_DSN"):  # a bad port fails before the run folder
        from harness.dsn import check_dsn

        check_dsn(args.dsn or os.environ["AUTHSTATE_DSN"])
    config = load_config(root / "pyproject.toml", args.gate)
    profile = load_profile(args.profile)
    counts = parse_companies(args.companies)
    duration = parse_duration(args.duration) if args.duration else profile.default_duration_s
    fault = parse_fault(args.fault, duration) if args.fault else None
    if args.processes < 1:
        raise ConfigError("--processes must be 1 or more", hint="e.g. --processes 2")
    if args.rate is not None and args.rate <= 0:
        raise ConfigError("--rate must be above 0 messages/s", hint="e.g. --rate 400")
    target = resolve_target(args.target).spec
    check_node_export(target)  # a missing #export fails now, not after provisioning
    main_count = 100 if 100 in counts else counts[0]
    plan = LoadPlan(profile=profile.name, companies=main_count, duration_s=duration,
                    rate=args.rate, processes=args.processes, target=target, fault=fault,
                    seed=args.seed)
    job = LoadJob(plan, scale=counts if len(counts) > 1 else (),
                  bridge_seconds=None if args.no_bridge_bench else 3.0)
    out_dir = prepare_out_dir(Path(args.out) if args.out else None, root, run_stamp(started))
    live = console.is_terminal and not args.plain
    env_facts = environment.collect(checkout_root())
    section: dict[str, Any] | None = None
    figures: list[Any] = []
    error: str | None = None
    interrupted = False
    console.print(f"load: profile {profile.name} ({PROFILES[profile.name].description}); "
                  f"report in {out_dir}", highlight=False)
    try:
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(provision_postgres(args.dsn))
            env_facts["postgres"] = environment.postgres_facts(server.kind, server.version,
                                                               server.dsn)
            proxy = stack.enter_context(provision_toxiproxy())
            console.print(f"PostgreSQL {server.version} ({server.kind}), fault proxy "
                          f"{proxy.kind} {proxy.version}", highlight=False)
            view = stack.enter_context(LiveView(duration, live=live))
            result = run_job(job, server.dsn, proxy.client, out_dir, on_live=view.update,
                             say=view.say)
            section, figures = result.section, result.figures
    except HarnessError as exc:
        error = exc.message + (f" ({exc.hint})" if exc.hint else "")
    except KeyboardInterrupt:
        interrupted = True
    checks = gate_checks(config, figures, {"load"}) if section is not None else []
    if args.no_bridge_bench:  # asked not to measure it: not a missing number
        checks = [Check(c.name, c.kind, "not applicable", "--no-bridge-bench", None,
                        c.threshold, c.op) if c.name == "gate load-bridge-min-ratio" else c
                  for c in checks]
    fault_section = (section or {}).get("fault")
    if fault_section is not None:
        lost = fault_section.get("lost_writes")
        valid = fault_section.get("valid")
        checks.append(Check("load checker (lost writes, anomalies) under fault", "gate",
                            "passed" if valid and lost == 0 else "failed",
                            f"lost writes {lost}, anomalies {fault_section.get('anomalies')}",
                            None if lost is None else float(lost), 0.0, "<="))
    status = run_status(checks, error=error, interrupted=interrupted)
    exit_code = STATUS_EXIT[status]
    run = {"id": out_dir.name, "started_at": started.isoformat(),
           "finished_at": datetime.now(UTC).isoformat(),
           "duration_s": round(time.monotonic() - t0, 3),
           "command": " ".join(["authstate-harness", *sys.argv[1:]]), "profile": profile.name,
           "suites": ["load"], "status": status, "exit_code": exit_code, "pytest_exit": None,
           "error": error}
    report = build_report(
        run=run, environment=env_facts,
        config={"load": {"profile": profile.name, "companies": counts, "duration_s": duration,
                         "rate": args.rate, "processes": args.processes, "target": target,
                         "fault": args.fault},
                "gates": config.describe(), "target": {"spec": target}},
        suites=[], checks=checks, figures=[judged(f, config) for f in figures], stats=[],
        chaos=[], artifacts={"report_md": "report.md"}, facts={}, load=section)
    write_report(out_dir, report)
    if section is not None:
        console.print()
        console.print(latency_table(section))
        for line in load_lines(section):
            console.print(escape(line), highlight=False)
        console.print(f"bridge ratio {section.get('bridge_ratio')}", highlight=False)
    for check in checks:
        if check.status != "not applicable":
            console.print(f"  {check.status:>8}  {escape(check.name)}: {escape(check.detail)}",
                          highlight=False)
    console.print(f"\n{status.upper()} -> {out_dir / 'report.md'} (exit {exit_code})",
                  highlight=False)
    if error:
        console.print(f"[red]{escape(error)}[/]", highlight=False)
    return exit_code


def register(sub: argparse._SubParsersAction) -> None:
    from harness.load.profiles import PROFILES

    parser = sub.add_parser(
        "load", help="Locust load run: one user per company, HDR latency, gates, report",
        description="Provision PostgreSQL and the fault proxy (as `run` does), benchmark the "
                    "gevent-asyncio bridge, run Locust with one user per company (Baileys "
                    "traffic), optionally inject a fault, write report.json (`load`), "
                    "report.md and Locust's own HTML/CSV into the run folder. Exit 0 gates met, "
                    "1 a gate missed or writes lost, 2 harness error.")
    parser.add_argument("--profile", default="steady", choices=list(PROFILES),
                        help="traffic profile (default steady): " + "; ".join(
                            f"{p.name}: {p.description}" for p in PROFILES.values()))
    parser.add_argument("--companies", default="100", metavar="N[,N...]",
                        help="concurrent companies (Locust users); a list runs a scale curve, "
                             "e.g. 10,100,1000 (default 100)")
    parser.add_argument("--duration", default=None, metavar="TIME",
                        help="run time per step, e.g. 60s, 2m (default: the profile's, 60s; "
                             "soak 10m)")
    parser.add_argument("--rate", type=float, default=None, metavar="MSG/S",
                        help="open model: this many messages/s in total, on schedule whatever "
                             "the latency; reports coordinated-omission-corrected latency too")
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="Locust worker processes on this machine (default 1)")
    parser.add_argument("--target", default="reference", metavar="SPEC",
                        help="the store: reference (default), resilient, module:factory, "
                             "file.py:factory or node:path/to/store.js[#export]")
    parser.add_argument("--fault", default=None, metavar="NAME@STARTs+DURs",
                        help="inject a chaos fault during the run, e.g. sever@20s+10s; the "
                             "operation history is checked (lost writes, RTO under load)")
    parser.add_argument("--dsn", default=None,
                        help="use this PostgreSQL instead of starting one (also AUTHSTATE_DSN)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="run folder (default reports/<UTC timestamp>/)")
    parser.add_argument("--gate", action="append", default=[], metavar="NAME=VALUE",
                        help="override a gate, e.g. --gate load-p99-max-ms=300")
    parser.add_argument("--no-bridge-bench", action="store_true",
                        help="skip the gevent-asyncio bridge benchmark that runs before the "
                             "load: gate load-bridge-min-ratio is then 'not applicable', not "
                             "missed")
    parser.add_argument("--seed", type=int, default=0, help="traffic seed (default 0)")
    parser.add_argument("--plain", action="store_true",
                        help="plain progress lines instead of a live bar")
    parser.set_defaults(func=_run)
