"""What a Locust process needs to know, from environment variables.

Environment variables (not Locust options) because the locustfile needs some of them at import
time (the profile decides whether a LoadTestShape exists), and because every Locust process
(`--processes N` forks, `--worker` on other machines) reads its own environment the same way:

    AUTHSTATE_DSN         PostgreSQL DSN the store connects with (required)
    AUTHSTATE_TARGET      target spec (default reference): reference, resilient, module:factory,
                          file.py:factory (harness/targets.py)
    AUTHSTATE_PROFILE     load profile (default steady; see harness/load/profiles.py)
    AUTHSTATE_RATE        open model: total messages/s over all companies (default: closed)
    AUTHSTATE_COMPANIES   companies sharing AUTHSTATE_RATE (default: Locust's -u)
    AUTHSTATE_LOAD_OUT    folder for the merged HDR result (load-result.json) and live.json
    AUTHSTATE_HISTORY_DIR folder for per-process operation histories (chaos checker input)
    AUTHSTATE_FAULT_WINDOW "start,end" seconds after the test start: phases before/during/after
    AUTHSTATE_CACHE_DIR   the target's cache_dir (resilient target), default a temp folder
    AUTHSTATE_RUN_TAG     prefix of company ids (default: random), unique per run
    AUTHSTATE_SEED        traffic seed (default 0)
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from harness.errors import ConfigError
from harness.load.profiles import LoadProfile, load_profile

NO_DSN_MESSAGE = (
    "AUTHSTATE_DSN is not set: the load users need a PostgreSQL to talk to.\n"
    "  Start one with `authstate-harness pg up` (it prints a DSN), then e.g.\n"
    "  AUTHSTATE_DSN=postgresql://... locust -f scenarios/load/locustfile.py --headless "
    "-u 100 -r 100 -t 30s\n"
    "  (or let the harness provision everything: `authstate-harness load`)")


class MissingDsn(ConfigError):
    def __init__(self) -> None:
        super().__init__(NO_DSN_MESSAGE.splitlines()[0],
                         hint="start one with `authstate-harness pg up` and export "
                              "AUTHSTATE_DSN=<the DSN it prints>, or run `authstate-harness load`")


@dataclass(frozen=True)
class LoadSettings:
    dsn: str
    target: str
    profile: LoadProfile
    rate: float | None
    companies: int | None
    out_dir: Path | None
    history_dir: Path | None
    fault_window: tuple[float, float] | None
    cache_dir: Path | None
    run_tag: str
    seed: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LoadSettings:
        env = os.environ if env is None else env
        dsn = (env.get("AUTHSTATE_DSN") or "").strip()
        if not dsn:
            raise MissingDsn()
        return cls(
            dsn=dsn, target=env.get("AUTHSTATE_TARGET") or "reference",
            profile=load_profile(env.get("AUTHSTATE_PROFILE")),
            rate=_number(env, "AUTHSTATE_RATE"),
            companies=_int(env, "AUTHSTATE_COMPANIES"),
            out_dir=_path(env, "AUTHSTATE_LOAD_OUT"),
            history_dir=_path(env, "AUTHSTATE_HISTORY_DIR"),
            fault_window=_window(env.get("AUTHSTATE_FAULT_WINDOW")),
            cache_dir=_path(env, "AUTHSTATE_CACHE_DIR"),
            run_tag=env.get("AUTHSTATE_RUN_TAG") or f"ld{secrets.token_hex(3)}",
            seed=_seed(env.get("AUTHSTATE_SEED")))


def profile_from_env(env: Mapping[str, str] | None = None) -> LoadProfile:
    env = os.environ if env is None else env
    return load_profile(env.get("AUTHSTATE_PROFILE"))


def _number(env: Mapping[str, str], name: str) -> float | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number", hint=f"e.g. {name}=500") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be above 0", hint=f"e.g. {name}=500")
    return value


def _seed(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        raise ConfigError(f"AUTHSTATE_SEED={raw!r} is not an integer",
                          hint="e.g. AUTHSTATE_SEED=1") from None


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = _number(env, name)
    return None if value is None else int(value)


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = (env.get(name) or "").strip()
    return Path(raw) if raw else None


def _window(raw: str | None) -> tuple[float, float] | None:
    if not raw:
        return None
    try:
        start, end = (float(x) for x in raw.split(","))
    except ValueError:
        raise ConfigError(f"AUTHSTATE_FAULT_WINDOW={raw!r} is not 'start,end' in seconds",
                          hint="e.g. AUTHSTATE_FAULT_WINDOW=20,30") from None
    return start, end


RECOVERY_GRACE_S = 5.0
"""Seconds after a fault's clear counted as `recovery`, not `after`: the steady-state gates
(latency, error rate) judge before + after; recovery itself is judged by the RTO."""
STEADY_PHASES = ("steady", "before", "after")
PHASES = ("setup", "steady", "before", "during", "recovery", "after")


def phase_of(elapsed_s: float, window: tuple[float, float] | None,
             grace_s: float = RECOVERY_GRACE_S) -> str:
    """The load phase of a moment: steady without a fault; before / during / recovery / after
    with one (setup is the caller's: a company's setup calls, whenever they happen)."""
    if window is None:
        return "steady"
    if elapsed_s < window[0]:
        return "before"
    if elapsed_s < window[1]:
        return "during"
    return "recovery" if elapsed_s < window[1] + grace_s else "after"
