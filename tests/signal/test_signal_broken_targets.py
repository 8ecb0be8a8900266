"""Broken stores fail the signal suite with named libsignal errors, attributed to the key.

Each target in tests/signal/broken_targets/ breaks one thing (see the top of each file). A real
scenario runs against it (real Baileys cryptography, real PostgreSQL, the real fault proxy):
the verdict must fail, the named libsignal error must be counted, and the attribution must name
the key whose store anomaly caused it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.signal.profiles import signal_params
from harness.signal.run import SignalEnv, run_signal
from harness.signal.workload import SignalConfig
from harness.targets import resolve_target

BROKEN = Path(__file__).resolve().parent / "broken_targets"
PARAMS = signal_params("smoke")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _errors(item: dict[str, Any]) -> Counter[str]:
    """Failed decrypts by libsignal error, in the run and in the new pod."""
    errors = Counter(item["failed_attempts"])
    errors.update(item["new_pod"]["failed_by"])
    return errors


def _describe(item: dict[str, Any]) -> str:
    return (f"verdict {item['verdict']}; errors {dict(_errors(item))}; "
            f"checker {item['checker']}; attribution keys {item['attribution']['keys'][:5]}")


async def test_a_forgotten_session_is_bad_mac_named_by_its_key(signal_env: SignalEnv) -> None:
    """Busy conversations (answers almost always), so that some session turns its ratchet and
    sends on it while PostgreSQL is away: the one the target then forgets."""
    spec = resolve_target(f"{BROKEN / 'forgets_session.py'}:open_store")
    params = signal_params("smoke", workload=SignalConfig(message_rate_hz=2.0,
                                                          reply_probability=0.9))
    outcome = await run_signal("sever", params, spec, signal_env)
    item = outcome.section
    assert item["fault"]["met"], _describe(item)
    assert item["verdict"] == "failed", _describe(item)
    assert _errors(item)["Bad MAC"] > 0, _describe(item)
    keys = {(k["company"], k["key"][0], k["key"][1]): k for k in item["attribution"]["keys"]}
    named = [k for k in keys.values() if k["key"][0] == "session"
             and k["anomaly"] in ("stale-read", "lost") and "Bad MAC" in k["errors"]]
    assert named, _describe(item)


async def test_buffers_as_objects_are_invalid_prekey_named_by_key(
        signal_env: SignalEnv) -> None:
    spec = resolve_target(f"{BROKEN / 'buffers_as_json.py'}:open_store")
    outcome = await run_signal("healthy", PARAMS, spec, signal_env)
    item = outcome.section
    assert item["verdict"] == "failed", _describe(item)
    assert _errors(item)["Invalid PreKey ID"] > 0, _describe(item)
    assert item["checker"]["anomalies"].get("unexpected", 0) > 0, _describe(item)
    named = [k for k in item["attribution"]["keys"] if k["key"][0] == "identity-key"
             and k["anomaly"] == "unexpected" and "Invalid PreKey ID" in k["errors"]]
    assert named, _describe(item)
