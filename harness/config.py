"""Gates and run profiles: `[tool.authstate-harness]` in pyproject.toml, overridden by `--gate`.

Besides the gates the table holds how they are judged (`Judging`): what an `undecided` gate
(its interval straddles the bound even after measuring more) does to the exit code, and how much
more the suites may measure before they give up (see docs/gates-and-noise.md).

One loader for everyone who needs a threshold (the benchmarks inside pytest, the main job that
writes the report), so a gate is never read two different ways. Unknown keys and non-numeric
values are errors, not silently ignored: a typo in a gate name must not turn a gate off.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from harness.errors import ConfigError

TABLE = "tool.authstate-harness"


@dataclass(frozen=True)
class GateSpec:
    """A known gate: what it bounds, in which direction, its default and the suite measuring it.

    `zero_allowed` is for "max count" gates (lost writes: at most 0); a ratio or a time of 0
    would be a gate nothing can meet, so it is refused as a typo.
    """

    name: str
    default: float
    higher_is_better: bool  # True: the measured value must be >= the gate, else <=
    doc: str
    suite: str  # the suite whose figures it checks; not applicable when that suite did not run
    zero_allowed: bool = False
    # Suites that may also record its figures (chaos runs signal conversations beside its
    # faults): when only they ran, the gate judges what they recorded, if anything.
    also: tuple[str, ...] = ()

    @property
    def op(self) -> str:
        return ">=" if self.higher_is_better else "<="


KNOWN_GATES: Mapping[str, GateSpec] = MappingProxyType({g.name: g for g in (
    GateSpec("bench-bulk-min-ratio", 0.8, True,
             "store keys.set of 812 pre-keys: throughput vs a raw asyncpg upsert", "bench"),
    GateSpec("bench-point-get-max-ratio", 1.25, False,
             "store keys.get of one pre-key: p50 latency vs a raw asyncpg fetch", "bench"),
    # 1.5, not 1.3: measured 1.27-1.39 on 2 cores (issue 16's quiet trial 1.287; 1.391
    # [1.300, 1.424] at load average 7), i.e. ~25-35 µs on ~90 µs: 1.3 sat inside the
    # measurement's own interval and flapped; 1.5 still fails a proxy that adds half a read.
    GateSpec("proxy-p50-max-ratio", 1.5, False,
             "asyncpg point read through the fault proxy (no toxics): p50 vs direct", "bench"),
    GateSpec("proxy-bulk-min-ratio", 0.7, True,
             "asyncpg bulk upsert through the fault proxy (no toxics): throughput vs direct",
             "bench"),
    GateSpec("resilient-point-get-max-ratio", 1.15, False,
             "resilient store keys.get of one pre-key, healthy: p50 latency vs the plain store",
             "bench"),
    GateSpec("resilient-bulk-min-ratio", 0.85, True,
             "resilient store keys.set of 812 pre-keys, healthy: throughput vs the plain store",
             "bench"),
    GateSpec("journal-replay-min-ratio", 0.7, True,
             "journal replay after an outage: rows/s vs the plain store's bulk upsert of the "
             "same rows", "bench"),
    # 1.5, not 1.0: observed from outside (every acknowledged write seen in PostgreSQL), the
    # resilient store's sever RTO p95 after a 10 s outage measured 1.14 s [0.83, 1.46] on a
    # quiet 2-core machine (its own report said ~0.8 s: it timed its breaker, not the replay)
    GateSpec("chaos-rto-p95-max-s", 1.5, False,
             "chaos: fault cleared -> every write the company had acknowledged and its first "
             "new write seen durable in PostgreSQL by the observer, p95 over companies x "
             "repetitions, seconds", "chaos"),
    GateSpec("chaos-mttd-p95-max-s", 0.5, False,
             "chaos: fault injected -> the company's first call that failed, ran past the "
             "harness's deadline or was answered without the database, p95, seconds "
             "(black-hole-like faults: chaos-deadline-max-s + 0.5 s)", "chaos"),
    GateSpec("chaos-deadline-max-s", 2.0, False,
             "chaos: the longest a call may take under any fault, seconds; a call past it + "
             "0.5 s is anomaly 'hang' (the harness's bound, never the store's own)", "chaos"),
    GateSpec("chaos-lost-writes-max", 0, False,
             "chaos: acknowledged writes missing from PostgreSQL after recovery (RPO)", "chaos",
             zero_allowed=True),
    GateSpec("load-p95-max-ms", 200.0, False,
             "load: p95 latency of every store call in steady state (setup and fault windows "
             "excluded), HDR, ms", "load"),
    GateSpec("load-p99-max-ms", 500.0, False,
             "load: p99 latency of every store call in steady state (setup and fault windows "
             "excluded), HDR, ms", "load"),
    GateSpec("load-error-rate-max", 0, False,
             "load: failed store calls / store calls in steady state (setup, fault windows "
             "and their recovery excluded)", "load", zero_allowed=True),
    GateSpec("signal-undecryptable-max", 0, False,
             "signal: messages that failed to decrypt at least once (Bad MAC, No session record, "
             "Invalid PreKey ID ...), through the target under a fault and in the new-pod "
             "check, real Baileys cryptography", "signal", zero_allowed=True, also=("chaos",)),
    GateSpec("signal-reestablished-max", 0, False,
             "signal: Signal sessions that had to be started again (Baileys' retry path, or a "
             "store read Baileys took for 'no session')", "signal", zero_allowed=True,
             also=("chaos",)),
    # 0.7, not 0.8: measured 0.78 (tooling notes: 18.5k vs 23.7k requests) and 0.814 in
    # issue 16's trial on 2 cores; 0.8 sat inside the spread of its own interleaved rounds.
    GateSpec("load-bridge-min-ratio", 0.7, True,
             "load: messages/s through Locust's gevent-asyncio bridge vs a pure asyncio "
             "driver, same concurrency, same run", "load"),
)})


# Keys of the table that are not gates: what a project sets once for every way of running the
# harness (`authstate-harness run`, the pytest plugin).
SETTINGS: Mapping[str, str] = MappingProxyType({
    "target": "the auth-state store under test when no --target / --authstate-target is "
              "given, e.g. \"node:src/auth-state.js\"",
})


@dataclass(frozen=True)
class Profile:
    """How thoroughly `run` checks: Hypothesis profile, chaos profile (same name), and what it
    means for the report. `chaos_contrast`: the plain reference store also runs the chaos
    suite as a contrast row (when the resilient store is the one tested). `suites`: the suites
    it runs when no --suite is given (empty: every default suite). `verdict_line`: end with
    one `key=value` line on stdout for scripts."""

    name: str
    hypothesis_profile: str
    description: str
    chaos_contrast: bool = False
    suites: tuple[str, ...] = ()
    verdict_line: bool = False


PROFILES: Mapping[str, Profile] = MappingProxyType({p.name: p for p in (
    Profile("quick", "dev",
            "property suites with 100 random examples per property, benchmarks, a "
            "representative chaos subset (sever, blackhole, pg-restart, client-crash)"),
    Profile("ci", "ci",
            "property suites derandomized (the same 100 examples every run, so a red build "
            "reproduces), benchmarks, every chaos scenario but the long outage, plus the plain "
            "reference store as a contrast row", chaos_contrast=True),
    Profile("thorough", "thorough",
            "property suites with 1000 random examples per property, benchmarks, every chaos "
            "scenario with repetitions and a long outage (>= 60 s)"),
    Profile("predeploy", "ci",
            "the gates that decide a deploy, within 5 minutes, against --dsn of a staging "
            "database: chaos (sever, blackhole, client-crash; pg-restart skips with a reason "
            "when the server is not one the harness controls) and load; ends with a one-line "
            "verdict on stdout", suites=("chaos", "load"), verdict_line=True),
)})


UNDECIDED_POLICIES = ("warn", "fail")


@dataclass(frozen=True)
class Judging:
    """How gates are judged with their intervals (keys of the same pyproject table).

    `undecided`: "warn" (default: an undecided gate is reported, loudly, and does not fail the
    run; only a clear miss does) or "fail". `more_bench_rounds`: when a benchmark ratio's
    interval straddles its gate, it measures up to this many times its base rounds again.
    `more_chaos_repetitions`: when a chaos RTO / MTTD interval straddles its gate, the scenario
    runs up to this many more repetitions.
    """

    undecided: str = "warn"
    more_bench_rounds: float = 2.0
    more_chaos_repetitions: int = 2
    sources: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, object]:
        return {"undecided": self.undecided, "more_bench_rounds": self.more_bench_rounds,
                "more_chaos_repetitions": self.more_chaos_repetitions,
                "sources": dict(self.sources)}


JUDGING_KEYS: Mapping[str, str] = MappingProxyType({
    "undecided": "undecided", "more-bench-rounds": "more_bench_rounds",
    "more-chaos-repetitions": "more_chaos_repetitions"})


@dataclass(frozen=True)
class HarnessConfig:
    """Effective gates, and where each value came from (for the report); how they are judged."""

    gates: Mapping[str, float]
    sources: Mapping[str, str] = field(default_factory=dict)  # gate -> "default" | file | "--gate"
    judging: Judging = field(default_factory=Judging)
    settings: Mapping[str, str] = field(default_factory=dict)  # see SETTINGS

    @property
    def target(self) -> str | None:
        return self.settings.get("target")

    def gate(self, name: str) -> float:
        if name not in self.gates:
            raise ConfigError(f"unknown gate {name!r}",
                              hint=f"known gates: {', '.join(sorted(KNOWN_GATES))}")
        return self.gates[name]

    def describe(self) -> list[dict[str, object]]:
        return [{"name": n, "value": v, "op": KNOWN_GATES[n].op, "source": self.sources[n],
                 "doc": KNOWN_GATES[n].doc, "suite": KNOWN_GATES[n].suite}
                for n, v in sorted(self.gates.items())]


def _number(name: str, raw: object, where: str) -> float:
    spec = KNOWN_GATES[name]
    if isinstance(raw, bool):
        raw = None  # True is an int in Python; never a threshold
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0 or (value == 0 and not spec.zero_allowed):
        kind = "a number >= 0" if spec.zero_allowed else "a positive number"
        raise ConfigError(f"gate {name} = {raw!r} in {where} is not {kind}",
                          hint=f"write e.g. {name} = {spec.default}")
    return value


def _check_name(name: str, where: str) -> None:
    if name not in KNOWN_GATES:
        raise ConfigError(f"unknown gate {name!r} in {where}",
                          hint=f"known gates: {', '.join(sorted(KNOWN_GATES))}; settings: "
                               f"{', '.join(JUDGING_KEYS)}")


def check_undecided(raw: object, where: str) -> str:
    if raw not in UNDECIDED_POLICIES:
        raise ConfigError(f"undecided = {raw!r} in {where} is not one of "
                          f"{', '.join(UNDECIDED_POLICIES)}",
                          hint='write undecided = "warn" (report, exit 0) or "fail" (exit 1)')
    return str(raw)


def _judging_value(key: str, raw: object, where: str) -> object:
    if key == "undecided":
        return check_undecided(raw, where)
    integer = key == "more-chaos-repetitions"
    ok = (not isinstance(raw, bool) and isinstance(raw, int | float) and math.isfinite(raw)
          and raw >= 0 and (not integer or float(raw).is_integer()))
    if not ok:
        kind = "a whole number >= 0" if integer else "a number >= 0"
        raise ConfigError(f"{key} = {raw!r} in {where} is not {kind}",
                          hint=f"e.g. {key} = {2 if integer else 2.0} (0 never measures more)")
    return int(raw) if integer else float(raw)  # type: ignore[arg-type]


def _setting(name: str, raw: object, where: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(f"{name} = {raw!r} in {where} is not a non-empty string",
                          hint=f"{name}: {SETTINGS[name]}")
    return raw.strip()


def parse_gate_override(text: str) -> tuple[str, float]:
    """`NAME=VALUE` from the command line, validated like the pyproject table."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep:
        raise ConfigError(f"--gate {text!r} is not NAME=VALUE",
                          hint="e.g. --gate bench-bulk-min-ratio=0.9")
    _check_name(name, "--gate")
    return name, _number(name, raw.strip(), "--gate")


def load_config(pyproject: Path | None, overrides: Iterable[str] = (), *,
                undecided: str | None = None) -> HarnessConfig:
    """Defaults < `[tool.authstate-harness]` of `pyproject` (if it exists) < `--gate` overrides
    (and `--undecided` for the policy); the table's non-gate keys (SETTINGS) are checked and
    kept in `settings`."""
    gates = {name: spec.default for name, spec in KNOWN_GATES.items()}
    sources = dict.fromkeys(gates, "default")
    judging: dict[str, object] = {}
    judging_sources: dict[str, str] = {}
    settings: dict[str, str] = {}
    if pyproject is not None and pyproject.is_file():
        try:
            doc = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{pyproject} is not valid TOML: {exc}",
                              hint="fix the file (its other tables matter too: pip reads it)"
                              ) from None
        table = doc.get("tool", {}).get("authstate-harness", {})
        if not isinstance(table, dict):
            raise ConfigError(f"[{TABLE}] in {pyproject} is not a table",
                              hint="write gates as `name = value` lines under the table")
        for name, raw in table.items():
            if name in JUDGING_KEYS:
                judging[JUDGING_KEYS[name]] = _judging_value(name, raw,
                                                             f"[{TABLE}] of {pyproject}")
                judging_sources[JUDGING_KEYS[name]] = str(pyproject.name)
                continue
            if name in SETTINGS:
                settings[name] = _setting(name, raw, f"[{TABLE}] of {pyproject}")
                continue
            _check_name(name, f"[{TABLE}] of {pyproject}")
            gates[name] = _number(name, raw, f"[{TABLE}] of {pyproject}")
            sources[name] = str(pyproject.name)
    for text in overrides:
        key, sep, raw = text.partition("=")
        if sep and key.strip() in JUDGING_KEYS:  # `--gate more-chaos-repetitions=0` too
            key = key.strip()
            value: object = raw.strip().strip('"')
            if key != "undecided":
                try:
                    value = float(str(value))
                except ValueError:
                    pass
            judging[JUDGING_KEYS[key]] = _judging_value(key, value, "--gate")
            judging_sources[JUDGING_KEYS[key]] = "--gate"
            continue
        name, number = parse_gate_override(text)
        gates[name] = number
        sources[name] = "--gate"
    if undecided is not None:
        judging["undecided"] = check_undecided(undecided, "--undecided")
        judging_sources["undecided"] = "--undecided"
    return HarnessConfig(gates=MappingProxyType(gates), sources=MappingProxyType(sources),
                         judging=Judging(**judging,  # type: ignore[arg-type]
                                         sources=MappingProxyType(judging_sources)),
                         settings=MappingProxyType(settings))


def profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}", hint=f"use one of: {', '.join(PROFILES)}")
    return PROFILES[name]
