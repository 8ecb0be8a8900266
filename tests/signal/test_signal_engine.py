"""The signal engine with real Baileys: over a Python store through the bridge and over a
Node.js module's own store in its sidecar; what Baileys makes of a store error.

Skips without Node.js/npm (the `baileys_root` fixture says how to enable it)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.authstate import PostgresAuthStore
from harness.authstate.errors import StoreUnavailable
from harness.metrics.checker import check
from harness.metrics.history import READ_KEYS, History
from harness.observe.final_read import final_read
from harness.signal.engine import SignalEngine
from harness.signal.profiles import signal_params
from harness.signal.recorder import Processes
from harness.signal.run import SignalEnv, run_signal
from harness.signal.tally import label
from harness.signal.workload import SignalConfig
from harness.targets import resolve_target

A, B = "co-a", "co-b"
JA, JB = "111@lid", "222@lid"


class FailingReads:
    """The reference store, whose reads of one key type fail while `failing` is set."""

    def __init__(self, inner: PostgresAuthStore) -> None:
        self.inner = inner
        self.failing: str | None = None

    async def load(self, company_id: str) -> Any:
        state = await self.inner.load(company_id)
        keys, failing = state.keys, self

        class Keys:
            async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
                if key_type == failing.failing:
                    raise StoreUnavailable(f"reading {key_type} failed (test)",
                                           company_id=company_id)
                return await keys.get(key_type, ids)

            async def set(self, data: Any) -> None:
                await keys.set(data)

        state.keys = Keys()
        return state

    async def close(self) -> None:
        await self.inner.close()


async def _pair(engine: SignalEngine) -> dict[str, dict[str, Any]]:
    """Open and pair A and B; their bundles with a first pre-key each."""
    bundles = {}
    for company, jid in ((A, JA), (B, JB)):
        assert (await engine.open(company, jid)) == {"paired": False}
        paired = await engine.op("pair", company, pre_keys=3)
        bundles[company] = {**paired["bundle"], "pre_key": paired["pre_keys"][0]}
    return bundles


async def test_baileys_reads_a_store_error_as_no_session(pg_dsn: str,
                                                        baileys_root: Path) -> None:
    store = FailingReads(await PostgresAuthStore.open(pg_dsn))
    history = History()
    engine = await SignalEngine.start(store, history, Processes(), op_timeout_s=20,
                                      commit_retries=1, commit_delay_ms=10,
                                      baileys_root=baileys_root)
    try:
        bundles = await _pair(engine)
        first = await engine.op("send", A, to=JB, plaintext=b"hi")
        assert first == {"need_bundle": True, "reason": "no session", "store_failures": 0}
        sent = await engine.op("send", A, to=JB, plaintext=b"hi", bundle=bundles[B])
        assert sent["type"] == "pkmsg" and sent["injected"]
        got = await engine.op("receive", B, **{"from": JA, "type": "pkmsg",
                                               "ciphertext": sent["ciphertext"]})
        assert got["plaintext"] == b"hi"
        reply = await engine.op("send", B, to=JA, plaintext=b"yo")
        got = await engine.op("receive", A, **{"from": JB, "type": reply["type"],
                                               "ciphertext": reply["ciphertext"]})
        assert (reply["type"], got["plaintext"]) == ("msg", b"yo")
        again = await engine.op("send", A, to=JB, plaintext=b"again")
        assert again["type"] == "msg"

        store.failing = "session"  # libsignal's loadSession swallows it: "no session"
        failed = await engine.op("receive", B, **{"from": JA, "type": "msg",
                                                  "ciphertext": again["ciphertext"]})
        assert label(failed["error"]) == "No session record" and failed["store_failures"] == 1
        need = await engine.op("send", A, to=JB, plaintext=b"x")
        assert need["need_bundle"] and need["store_failures"] == 1  # a new session, at once

        store.failing = "pre-key"  # loadPreKey does not swallow it: the store's own error
        new = await engine.op("send", B, to="333@lid", plaintext=b"x", bundle=bundles[A])
        failed = await engine.op("receive", A, **{"from": "333@lid", "type": "pkmsg",
                                                  "ciphertext": new["ciphertext"]})
        assert label(failed["error"]) == "store: StoreUnavailable"
        store.failing = None
        got = await engine.op("receive", A, **{"from": "333@lid", "type": "pkmsg",
                                               "ciphertext": new["ciphertext"]})
        assert got["plaintext"] == b"x"  # the pre-key was not consumed by the failed attempt
    finally:
        await engine.close()
        await store.close()
    failed_reads = [op for op in history.ops() if op.f == READ_KEYS and op.outcome == "fail"]
    assert [op.keys[0][0] for op in failed_reads] == ["session", "session", "pre-key"]
    assert "StoreUnavailable" in (failed_reads[0].error or "")


async def test_a_node_module_serves_libsignal_from_its_own_sidecar(
        signal_env: SignalEnv) -> None:
    """libsignal runs inside the module's sidecar over its own `state.keys`; every store call
    comes back as a trace, and its digests agree with what PostgreSQL holds (the checker
    finds no value no write produced)."""
    params = signal_params("smoke", companies=5, warmup_s=1.0, outage_s=1.0, recovery_s=1.0,
                           workload=SignalConfig(message_rate_hz=1.0))
    spec = resolve_target("node:examples/node-store/index.js")
    outcome = await run_signal("healthy", params, spec, signal_env)
    item = outcome.section
    assert item["verdict"] == "passed", json.dumps({k: item[k] for k in (
        "undecryptable", "reestablished_by", "lost_by", "send_failures", "new_pod", "checker",
        "harness_errors", "attribution")}, default=str)[:3000]
    assert outcome.workload.engine is not None
    assert outcome.workload.engine.in_target_sidecar
    assert item["checker"]["valid"] and item["checker"]["reads"] > 0
    assert item["decrypted"] == item["deliveries"] > 0 and item["new_pod_ok"]


async def test_the_history_it_writes_is_judged_like_any_other(pg_dsn: str,
                                                             baileys_root: Path) -> None:
    """Pairing, a session, a replay libsignal refuses: the checker accepts the history the
    bridge wrote (every read and write of libsignal, creds included) against PostgreSQL."""
    target = await resolve_target("reference").open(pg_dsn, cache_dir=Path("."))
    history = History()
    engine = await SignalEngine.start(target, history, Processes(), op_timeout_s=20,
                                      commit_retries=1, commit_delay_ms=10,
                                      baileys_root=baileys_root)
    try:
        bundles = await _pair(engine)
        sent = await engine.op("send", A, to=JB, plaintext=b"hi", bundle=bundles[B])
        await engine.op("receive", B, **{"from": JA, "type": "pkmsg",
                                         "ciphertext": sent["ciphertext"]})
        replay = await engine.op("receive", B, **{"from": JA, "type": "pkmsg",
                                                  "ciphertext": sent["ciphertext"]})
        assert label(replay["error"]) == "Key used already or never filled"  # a replay
    finally:
        await engine.close()
        await target.close()
    final = await final_read(pg_dsn, [A, B])
    result = check(history, final.final, final_meta=final.final_meta)
    assert result.valid and result.acked_writes > 5 and result.keys_checked > 5
