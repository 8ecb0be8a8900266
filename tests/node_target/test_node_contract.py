"""What published Node.js stores look like, accepted as they are: `deleteSession()` returned
beside `saveCreds` is the harness's `delete_company`, and node-postgres' errors are judged by
the SQLSTATE they carry (a refusal wrote nothing; an outage may have), real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from node_bridge_support import MODULES, require_node

from harness.chaos.values import ValueFactory
from harness.metrics.history import History
from harness.node_target.errors import (
    NodeStoreError,
    NodeStoreTypeError,
    NodeStoreUnavailable,
    NodeStoreValueError,
    NodeUnavailable,
    js_error_kind,
    module_error,
)
from harness.target_driver import Driver
from harness.targets import TargetSpec, resolve_target

KV_ADAPTER = "node:examples/node-kv-store/adapter.js"
SQLSTATE_STORE = f"node:{MODULES / 'sqlstate_store' / 'index.mjs'}"
NUL_VALUE = {"note": "a\x00b"}


def node_spec(spec: str) -> TargetSpec:
    require_node()
    try:
        return resolve_target(spec)  # installs the module's npm dependencies on first use
    except NodeUnavailable as exc:
        pytest.skip(f"{exc.message}. To enable: {exc.hint}")


@pytest.mark.parametrize(("name", "code", "message", "kind"), [
    ("TypeError", None, "sessionId must be a string", "refusal"),
    ("RangeError", None, "bad id", "refusal"),
    ("error", "22P05", "unsupported Unicode escape sequence", "refusal"),
    ("error", "23505", "duplicate key value violates unique constraint", "refusal"),
    ("error", "08006", "connection failure", "outage"),
    ("error", "57P01", "terminating connection due to administrator command", "outage"),
    ("error", "53300", "too many connections", "outage"),
    ("error", "40001", "could not serialize access", "outage"),
    ("Error", "ECONNRESET", "read ECONNRESET", "outage"),
    ("Error", None, "Connection terminated unexpectedly", "outage"),
    ("Error", "EPIPE", "write EPIPE", "outage"),
    ("error", "42P01", 'relation "auth_sessions" does not exist', "error"),
    ("Error", None, "something else", "error"),
])
def test_js_errors_are_classified_by_what_they_carry(name: str, code: str | None,
                                                     message: str, kind: str) -> None:
    assert js_error_kind(name, code, message) == kind
    error = module_error({"name": name, "message": message, "code": code},
                         operation="state.keys.set", company_id="acme", write=True)
    assert error.outcome == ("failed" if kind == "refusal" else "unknown")
    expected = {"refusal": (NodeStoreTypeError if name == "TypeError" else NodeStoreValueError),
                "outage": NodeStoreUnavailable, "error": NodeStoreError}[kind]
    assert type(error) is expected
    assert module_error({"name": name, "message": message, "code": code}, operation="load",
                        company_id="acme", write=False).outcome == "failed"


async def test_a_declared_outcome_still_wins() -> None:
    error = module_error({"name": "TypeError", "message": "x", "outcome": "unknown"},
                         operation="saveCreds", company_id="a", write=True)
    assert error.outcome == "unknown"


async def test_node_postgres_errors_are_judged_by_their_sqlstate(pg_dsn: str,
                                                                tmp_path: Path) -> None:
    """A correct store lets node-postgres' errors through: 22P05 (a NUL in a JSONB string) out
    of keys.set is a refusal -- a Python ValueError, recorded `fail`, nothing written -- and a
    terminated backend (57P01) or a broken link (08006) an outage: `info` (it may have
    committed), never a harness error."""
    spec = node_spec(SQLSTATE_STORE)
    target = await spec.open(pg_dsn, cache_dir=tmp_path)
    history = History()
    driver = Driver(target, history)
    try:
        state = await target.load("acme")
        with pytest.raises(ValueError, match=r"22P05|Unicode") as err:
            await state.keys.set({"session": {"a.0": NUL_VALUE}})
        assert isinstance(err.value, NodeStoreValueError) and err.value.outcome == "failed"
        assert err.value.sqlstate == "22P05"
        assert await driver.set(0, "acme", state, {"session": {"a.0": NUL_VALUE}}) == "fail"
        for company, code in (("terminated", "57P01"), ("link-broken", "08006")):
            broken = await target.load(company)
            with pytest.raises(NodeStoreUnavailable) as err:
                await broken.keys.set({"session": {"a.0": {"ok": 1}}})
            assert err.value.js_code == code and err.value.outcome == "unknown"
            assert err.value.retryable
            assert await driver.set(1, company, broken, {"session": {"a.0": {"ok": 1}}}) == "info"
    finally:
        await target.close()
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM sqlstate_probe "
                                   "WHERE k LIKE 'acme:%'") == 0, "a refusal wrote nothing"
    finally:
        await conn.close()


async def test_delete_session_is_the_delete_company_hook(pg_dsn: str, tmp_path: Path) -> None:
    """`deleteSession()` returned by `useX(companyId)` becomes `target.delete_company`, offered
    once a load has shown it; it deletes that company's creds and keys and nobody else's."""
    spec = node_spec(KV_ADAPTER)
    target = await spec.open(pg_dsn, cache_dir=tmp_path)
    values = ValueFactory("delete")
    try:
        assert getattr(target, "delete_company", None) is None, "unknown before any load"
        for company in ("a_b", "axb"):
            state = await target.load(company)
            state.creds.update(values.paired_creds("5511"))
            await state.save_creds()
            await state.keys.set({"pre-key": values.pre_keys(1, 2)})
        delete_company = getattr(target, "delete_company", None)
        assert callable(delete_company)
        await delete_company("a_b")
        gone, kept = await target.load("a_b"), await target.load("axb")
        assert not gone.creds.get("registered") and kept.creds["registered"]
        assert await gone.keys.get("pre-key", ["1", "2"]) == {}
        assert set(await kept.keys.get("pre-key", ["1", "2"])) == {"1", "2"}
    finally:
        await target.close()
