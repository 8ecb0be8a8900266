"""The catalogue of broken stores: each one realistic mistake, the scenario that exposes it and
what must name it. The checker's acceptance suite (tests/chaos/test_broken_targets.py) runs
every entry for real; the README's table is printed from a run of it:

    .venv/bin/python tests/chaos/catalogue.py            # runs each entry through `harness run`
    .venv/bin/python tests/chaos/catalogue.py --list     # the table without running anything

Targets live in tests/chaos/broken_targets/ (Python, wrapping the reference store) unless the
entry names a spec of its own (the Node.js stores).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Entry:
    name: str  # file stem in broken_targets/ (or a label for a spec)
    mistake: str
    scenario: str  # chaos scenario (or "property" for the property suite)
    caught_by: str  # the anomaly that must be named, or a gate that must be missed
    spec: str = ""  # default: tests/chaos/broken_targets/<name>.py:open_store
    # the test that runs it in CI when it is not test_broken_targets.py's short scenario
    tested_by: str = ""

    @property
    def target(self) -> str:
        return self.spec or f"tests/chaos/broken_targets/{self.name}.py:open_store"

    @property
    def is_gate(self) -> bool:
        return self.caught_by.startswith("gate ")


CATALOGUE: tuple[Entry, ...] = (
    Entry("drop_writes", "skips writes while PostgreSQL is away, reports them saved (the origin "
          "system's cache mode)", "sever", "lost"),
    Entry("cache_before_db", "updates its key cache before the database and keeps it when the "
          "write fails (makeCacheableSignalKeyStore)", "sever", "unexpected"),
    Entry("fresh_creds_on_error", "takes a failed creds read for 'no creds' and hands out fresh "
          "ones (`readCreds() || initAuthCreds()`)", "sever", "creds-reset"),
    Entry("absent_on_error", "answers 'absent' when a key read fails", "sever", "stale-read"),
    Entry("stale_cache_after_heal", "keeps serving an outage's cache after the heal while "
          "another instance writes newer values", "sever", "stale-read"),
    Entry("deletes_not_journaled", "journals an outage's upserts but not its deletes",
          "sever", "resurrected"),
    Entry("replay_wrong_order", "replays its outage journal newest first", "sever", "lost"),
    Entry("no_fence", "retries a failed write after the heal without a fence", "sever",
          "late-write"),
    Entry("undecoded_buffer_cache", "serves cached JSON without reviving Buffers", "sever",
          "unexpected"),
    Entry("hang_retries", "retries a failed call for 10 s before giving up (believes in a 30 s "
          "deadline)", "sever", "hang"),
    Entry("non_atomic_writes", "commits a multi-key keys.set one key at a time",
          "reset-mid-write", "torn"),
    Entry("cancel_drops_batch", "a group commit run by the first caller's task: when that "
          "caller is cancelled, the batch is dropped and the others told it was written",
          "cancel", "lost"),
    Entry("stale_cache", "serves keys from its cache while PostgreSQL answers; another "
          "instance's writes never reach that cache", "deploy-overlap", "stale-read"),
    Entry("journal_per_process", "the resilient store journaling into a per-process temporary "
          "directory: a restart during an outage leaves its journal behind", "restart-degraded",
          "lost"),
    Entry("value_column_too_small", "a value column too small for a Baileys session",
          "sever", "setup-failed"),
    Entry("write_behind_lies", "acknowledges from memory, writes 2.5 s later, says every write "
          "came from the database", "sever", "gate chaos-rto-p95-max-s"),
    Entry("journal_no_fsync", "a journal that never fdatasyncs: acknowledged writes live in "
          "the page cache", "power-loss", "lost", tested_by="tests/chaos/test_disk_scenarios.py"),
    Entry("journal_ignores_enospc", "a journal that acknowledges a group its disk refused "
          "(ENOSPC)", "disk-full", "lost", tested_by="tests/chaos/test_disk_scenarios.py"),
    Entry("replay_skips_sessions", "replays the journal a killed process left without its "
          "session rows ('Baileys re-establishes sessions anyway')", "client-crash", "lost",
          tested_by="tests/chaos/test_client_crash.py"),
    Entry("like_delete", "a logout that deletes with an unescaped LIKE 'a_b:%' (also deletes "
          "axb's keys)", "property", "cross-tenant",
          tested_by="tests/property_suite/test_tenant_isolation_catches.py"),
    Entry("node flawed.js", "a Node.js store that skips saves during an outage", "sever",
          "lost", spec="node:examples/node-store/flawed.js",
          tested_by="tests/node_target/test_node_bridge_chaos.py"),
    Entry("node crashing_store", "a Node.js store with no 'error' listener on its pool: the "
          "sever kills its process", "sever", "crash",
          spec="node:tests/node_target/modules/crashing_store/index.mjs",
          tested_by="tests/node_target/test_node_bridge_chaos.py"),
    Entry("node like-delete.js", "a published-style one-table Node.js store whose "
          "deleteSession uses LIKE", "property", "cross-tenant",
          spec="node:examples/node-kv-store/like-delete.js",
          tested_by="tests/node_target/test_node_kv_store.py"),
    Entry("forgets_session", "forgets the session writes one conversation made during an "
          "outage", "signal", "gate signal-undecryptable-max",
          spec="tests/signal/broken_targets/forgets_session.py:open_store",
          tested_by="tests/chaos/test_signal_beside.py"),
    Entry("buffers_as_json", "hands Baileys its Buffers as {type: 'Buffer', data} objects",
          "signal", "gate signal-undecryptable-max",
          spec="tests/signal/broken_targets/buffers_as_json.py:open_store",
          tested_by="tests/signal/test_signal_broken_targets.py"),
)

CONTROLS: tuple[str, ...] = ("reference", "resilient")


def command(entry_target: str, scenario: str, out: Path) -> list[str]:
    """How a team would run it: a chaos scenario, the tenant-isolation property, or the signal
    suite's sever."""
    base = [sys.executable, "-m", "harness", "run", "--target", entry_target, "--out", str(out),
            "--plain"]
    if scenario == "property":
        return [*base, "--suite", "property", "--pytest-args", "-k test_tenant_isolation"]
    if scenario == "signal":
        return [*base, "--suite", "signal"]
    return [*base, "--suite", "chaos", "--scenario", scenario]


def run_entry(target: str, scenario: str, out: Path) -> tuple[int, dict]:
    """Run it through the CLI: (exit code, the scenario's row, with the gates it missed)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("AUTHSTATE_PG_KIND", None)
    proc = subprocess.run(command(target, scenario, out), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900, check=False)
    try:
        report = json.loads((out / "report.json").read_text())
    except (OSError, ValueError):
        return proc.returncode, {}
    rows = [s for s in report.get("chaos", {}).get("scenarios", [])
            if s.get("name") == scenario and not s.get("contrast")]
    row = rows[0] if rows else {}
    if scenario == "signal":  # the suite's sever run: its undecryptable messages, by error
        severed = [s for s in report.get("signal") or []
                   if s.get("name") == "sever" and not s.get("contrast")]
        row = {"signal": severed[0]} if severed else {}
    if scenario == "property":  # the finding is the failing test's message
        failures = [f for suite in report.get("suites", []) for f in suite.get("failures", [])]
        text = " ".join(str(f.get("message", "")) for f in failures)
        row = {"anomalies": {"cross-tenant": text.count("cross-tenant")} if "cross-tenant"
               in text else {}, "verdict": "failed" if failures else "passed"}
    row["_gates_missed"] = [c["name"] for c in report.get("results", {}).get("checks", [])
                            if c.get("kind") == "gate" and not c.get("passed")]
    return proc.returncode, row


def cell(text: str) -> str:
    """Text for a Markdown table cell (a `||` in a mistake would end the cell)."""
    return text.replace("|", "\\|")


def gate_figure(entry: Entry, row: dict) -> str:
    """What a gate entry was caught on: its Signal messages, or RTO observed vs self-reported."""
    signal = row.get("signal") or {}
    if "signal" in entry.caught_by:
        errors = ", ".join(f"{name} {count}" for name, count in
                           sorted((signal.get("undecryptable") or {}).items()))
        return (f"{signal.get('undecryptable_total')} of {signal.get('deliveries')} deliveries "
                f"undecryptable ({errors or 'none'}), {signal.get('reestablished')} sessions "
                f"re-established")
    rto, reported = row.get("rto_s", {}), row.get("reported", {}).get("rto_s", {})
    return f"RTO p95 observed {rto.get('p95')} s, store's own {reported.get('p95')} s"


def missed(row: dict) -> str:
    """The gates a control missed, in a word each (empty: none)."""
    return ", ".join(name.removeprefix("gate ") for name in row.get("_gates_missed", []))


def control_passes(row: dict) -> bool:
    """A control passes when the checker names nothing and it meets every chaos gate. The
    Signal gates are listed, not required: the reference store fails closed, and Baileys takes
    its refused session reads for "no session" (docs/signal.md), which is a finding about
    fail-closed stores, not a flaw of the checker."""
    chaos_missed = [g for g in row.get("_gates_missed", []) if g.startswith("gate chaos-")]
    return row.get("verdict") == "passed" and not row.get("anomalies") and not chaos_missed


def caught(entry: Entry, code: int, row: dict) -> bool:
    if entry.is_gate:
        return code == 1 and entry.caught_by in row.get("_gates_missed", [])
    return code == 1 and row.get("anomalies", {}).get(entry.caught_by, 0) > 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print the table, run nothing")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only this entry or control (repeatable), e.g. --only "
                             "write_behind_lies --only reference")
    args = parser.parse_args()
    unknown = set(args.only) - {e.name for e in CATALOGUE} - set(CONTROLS)
    if unknown:
        parser.error(f"no entry or control named {', '.join(sorted(unknown))}; "
                     f"--list shows the entries, the controls are {', '.join(CONTROLS)}")
    print("| mistake | target | scenario | must be named | found | exit | caught |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="catalogue-") as scratch:
        for entry in CATALOGUE:
            if args.only and entry.name not in args.only:
                continue
            if args.list:
                print(f"| {cell(entry.mistake)} | `{entry.name}` | {entry.scenario} | "
                      f"`{entry.caught_by}` | | | |")
                continue
            started = time.monotonic()
            code, row = run_entry(entry.target, entry.scenario, Path(scratch) / entry.name)
            found = ", ".join(f"{k} x{v}" for k, v in sorted(row.get("anomalies", {}).items()))
            if entry.is_gate:
                found = gate_figure(entry, row)
            print(f"| {cell(entry.mistake)} | `{entry.name}` | {entry.scenario} | "
                  f"`{entry.caught_by}` | {found or row.get('verdict', 'no report')} | {code} | "
                  f"{'yes' if caught(entry, code, row) else '**NO**'} |", flush=True)
            print(f"  ({time.monotonic() - started:.0f} s)", file=sys.stderr)
        if not args.list:
            for control in CONTROLS:
                if args.only and control not in args.only:
                    continue
                code, row = run_entry(control, "sever", Path(scratch) / control)
                gates = missed(row)
                print(f"| control: the {control} store | `{control}` | sever | nothing | "
                      f"verdict {row.get('verdict', 'no report')}"
                      f"{f'; gates missed: {gates}' if gates else ''} | {code} | "
                      f"{'passes' if control_passes(row) else '**FAILS**'} |", flush=True)


if __name__ == "__main__":
    main()
