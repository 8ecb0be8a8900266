"""The locustfile as a Locust user meets it: without a DSN it says how to get one."""

from __future__ import annotations

import os
import subprocess
import sys

from harness.paths import repo_root

LOCUSTFILE = repo_root() / "scenarios" / "load" / "locustfile.py"


def _locust(env_extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSTATE_")}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
                           "-u", "1", "-t", "1s", *args], capture_output=True, text=True,
                          env=env, cwd=repo_root(), timeout=120)


def test_without_a_dsn_locust_stops_and_names_pg_up() -> None:
    done = _locust({})
    assert done.returncode != 0
    assert "AUTHSTATE_DSN is not set" in done.stderr
    assert "authstate-harness pg up" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_bad_profile_is_named_with_the_choices() -> None:
    done = _locust({"AUTHSTATE_DSN": "postgresql://u@127.0.0.1:1/x",
                    "AUTHSTATE_PROFILE": "stedy"})
    assert done.returncode != 0
    assert "unknown load profile 'stedy'" in done.stderr and "steady" in done.stderr
    assert "Traceback" not in done.stderr
