"""The bridge against real Node.js (an in-memory probe module, no database): values, errors,
deadlines, crashes, close() and the environment the module sees."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from node_bridge_support import MODULES, OpenProbe

from harness.errors import is_harness_failure
from harness.metrics.history import History
from harness.node_target.errors import (
    NodeCallTimeout,
    NodeProtocolError,
    NodeSidecarCrashed,
    NodeStoreCrashed,
    NodeStoreError,
    NodeStoreSetupFailed,
    NodeStoreTypeError,
)
from harness.node_target.target import NodeClearableKeyStore
from harness.target_driver import Driver

ALL_BYTES = bytes(range(256))


async def test_bytes_round_trip_exactly(open_probe: OpenProbe) -> None:
    target = await open_probe()
    state = await target.load("acme")
    value = {"public": ALL_BYTES, "private": b"", "nested": [{"k": b"\x00\xff"}, "text", 1.5]}
    await state.keys.set({"pre-key": {"1": value}, "identity-key": {"a.0": ALL_BYTES[::-1]}})
    again = await target.load("acme")
    assert await again.keys.get("pre-key", ["1"]) == {"1": value}
    assert await again.keys.get("identity-key", ["a.0"]) == {"a.0": ALL_BYTES[::-1]}


async def test_creds_saved_in_place_and_read_back(open_probe: OpenProbe) -> None:
    target = await open_probe()
    state = await target.load("acme")
    assert state.creds == {"fresh": True}
    state.creds = {"me": {"id": "5511@s.whatsapp.net"}, "noiseKey": {"public": ALL_BYTES}}
    await state.save_creds()
    assert (await target.load("acme")).creds == state.creds


async def test_uint8array_from_the_module_arrives_as_bytes(open_probe: OpenProbe) -> None:
    state = await (await open_probe()).load("uint8")
    assert await state.keys.get("identity-key", ["x"]) == {"x": bytes([0, 1, 254, 255])}


async def test_plain_objects_that_look_like_bytes_arrive_as_the_objects_they_are(
        open_probe: OpenProbe) -> None:
    """A module that returns {type: 'Buffer', data} or {"0": 0, "1": 1} objects (a cache parsed
    without BufferJSON's reviver) hands Baileys objects, not bytes: the bridge must not revive
    them on the way, or the checker could never see the bug. Real Buffers stay bytes."""
    state = await (await open_probe()).load("undecoded")
    got = (await state.keys.get("session", ["x"]))["x"]
    assert got["buffer"] == {"type": "Buffer", "data": "AAH+/w=="}
    assert got["numbered"] == {"0": 0, "1": 1}
    assert got["real"] == bytes([0, 1, 254, 255])


async def test_null_for_a_missing_id_is_omitted_and_a_falsy_set_deletes(
        open_probe: OpenProbe) -> None:
    """{"5": 0} must reach the module as a delete, not be revived as a one-byte Buffer."""
    state = await (await open_probe()).load("acme")
    await state.keys.set({"pre-key": {"5": {"public": b"k"}}})
    assert await state.keys.get("pre-key", ["5", "6"]) == {"5": {"public": b"k"}}
    await state.keys.set({"pre-key": {"5": 0}})
    assert await state.keys.get("pre-key", ["5"]) == {}


async def test_module_errors_reach_the_caller_with_their_message(open_probe: OpenProbe) -> None:
    target = await open_probe()
    state = await target.load("boom")
    with pytest.raises(NodeStoreError, match="write exploded") as err:
        await state.keys.set({"session": {"a.0": {"x": 1}}})
    assert err.value.outcome == "unknown", "a write that threw may have committed"
    assert "probe.mjs" in (err.value.hint or ""), "the hint points at the throw"
    with pytest.raises(NodeStoreError, match="read exploded") as err:
        await state.keys.get("session", ["a.0"])
    assert err.value.outcome == "failed"
    with pytest.raises(NodeStoreError, match=r"EPROBE|cannot load"):
        await target.load("load-throws")
    with pytest.raises(NodeStoreTypeError):  # a JS TypeError is a Python TypeError too
        await target.load(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must resolve to"):
        await target.load("bad-shape")


async def test_a_write_declared_failed_is_a_fail_in_the_chaos_history(
        open_probe: OpenProbe) -> None:
    """The chaos driver's classification: failed write = fail, other write errors = info,
    read errors = fail; the history keeps the module's message."""
    target = await open_probe()
    history = History()
    driver = Driver(target, history)
    boom = await target.load("boom")
    refused = await target.load("boom-failed")
    assert await driver.set(0, "boom", boom, {"session": {"a.0": {"x": 1}}}) == "info"
    assert await driver.set(0, "boom-failed", refused, {"session": {"a.0": {"x": 1}}}) == "fail"
    assert (await driver.get(0, "boom", boom, "session", ["a.0"]))[0] == "fail"
    assert any("write exploded" in str(e.get("error")) for e in history.events())


async def test_a_hung_call_is_bounded_and_unknown(open_probe: OpenProbe,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHSTATE_NODE_CALL_TIMEOUT_S", "0.5")
    target = await open_probe()
    state = await target.load("hang")
    with pytest.raises(NodeCallTimeout) as err:
        await state.keys.set({"session": {"a.0": {"x": 1}}})
    assert err.value.outcome == "unknown" and err.value.retryable
    assert err.value.waited_s is not None and err.value.waited_s >= 0.5
    with pytest.raises(NodeCallTimeout) as err:
        await state.keys.get("session", ["a.0"])
    assert err.value.outcome == "failed"
    history = History()
    assert await Driver(target, history).set(0, "hang", state, {"session": {"b.0": {}}}) == "info"
    # the sidecar still serves everyone else
    other = await target.load("acme")
    await other.keys.set({"session": {"a.0": {"x": 1}}})


async def test_a_crashed_sidecar_is_a_verdict_about_the_store_with_the_module_output(
        open_probe: OpenProbe) -> None:
    """The module crashed its own process: a finding about the store (anomaly `crash`, exit 1
    in a run), not the harness failing; a module that cannot be imported stays a bad spec."""
    target = await open_probe()
    state = await target.load("crash")
    with pytest.raises(NodeStoreCrashed) as err:
        await state.keys.set({"session": {"a.0": {"x": 1}}})
    assert err.value.returncode == 7 and err.value.anomaly == "crash"
    assert err.value.from_target and not is_harness_failure(err.value)
    assert "crash: the Node sidecar exited unexpectedly" in err.value.message
    assert "about to die" in err.value.message
    with pytest.raises(NodeSidecarCrashed):  # later calls fail at once, they do not hang
        await target.load("acme")
    assert target.failure() is err.value, "the chaos runner's hook names the crash"


async def test_an_unreadable_reply_is_the_bridge_failing_not_the_store(
        open_probe: OpenProbe) -> None:
    """Replies are the sidecar's own lines: one the harness cannot read is a harness failure
    (exit 2), raised at once by every call, not a 20 s "hang" charged to the store."""
    target = await open_probe()
    target.sidecar._on_line(b'{"id": 1, "ok": {"type": "Buffer", "data": "not base64 !"}')
    with pytest.raises(NodeProtocolError, match="cannot read") as err:
        await target.load("acme")
    assert is_harness_failure(err.value)


async def test_an_unhandled_error_in_the_module_crashes_the_sidecar_visibly(
        open_probe: OpenProbe) -> None:
    target = await open_probe()
    state = await target.load("unhandled")
    await state.keys.set({"session": {"a.0": {"x": 1}}})
    with pytest.raises(NodeSidecarCrashed, match="unhandled error in a timer"):
        for _ in range(100):
            await target.load("acme")
            await asyncio.sleep(0.05)


async def test_a_module_that_fails_to_import_is_reported_at_open(open_probe: OpenProbe) -> None:
    with pytest.raises(NodeStoreSetupFailed, match="cannot be imported") as err:
        await open_probe(MODULES / "broken_import.mjs")
    # `run` refuses such a module before it starts (a bad spec); one failing only here failed
    # its set-up: a verdict about the store
    assert err.value.anomaly == "setup-failed" and not is_harness_failure(err.value)


async def test_a_missing_export_names_the_functions_there_are(open_probe: OpenProbe) -> None:
    with pytest.raises(NodeSidecarCrashed) as err:
        await open_probe(export="useNothing")
    assert "missing" in err.value.message and "useNamedProbe" in (err.value.hint or "")
    with pytest.raises(NodeSidecarCrashed, match="not a function"):
        await open_probe(export="notAFunction")


async def test_named_and_commonjs_exports(open_probe: OpenProbe) -> None:
    named = await open_probe(export="useNamedProbe")
    assert (await named.load("acme")).creds == {"fresh": True}
    cjs = await open_probe(MODULES / "commonjs_store.cjs", export="useCjsAuthState")
    assert (await cjs.load("acme")).creds == {"cjs": True}


async def test_keys_clear_is_offered_when_the_module_has_it(open_probe: OpenProbe) -> None:
    state = await (await open_probe()).load("acme")
    assert isinstance(state.keys, NodeClearableKeyStore)
    await state.keys.set({"session": {"a.0": {"x": 1}}})
    await state.keys.clear()
    assert await state.keys.get("session", ["a.0"]) == {}


async def test_close_export_is_called(open_probe: OpenProbe, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "closed"
    monkeypatch.setenv("PROBE_CLOSE_MARKER", str(marker))
    target = await open_probe()
    await target.close()
    assert marker.read_text() == "closed"
    assert target.sidecar.proc.poll() is not None
    assert target.failure() is None, "a closed sidecar did not crash"


async def test_the_module_sees_the_database_in_the_libpq_variables(
        open_probe: OpenProbe, tmp_path: Path) -> None:
    creds = (await (await open_probe()).load("env")).creds
    assert creds["database_url"] == "postgresql://prober:secret@127.0.0.1:5999/probe_db"
    assert (creds["pghost"], creds["pgport"], creds["pguser"], creds["pgdatabase"]) == (
        "127.0.0.1", "5999", "prober", "probe_db")
    assert creds["password_is_set"] is True
    assert creds["cache_dir"] == str(tmp_path)
