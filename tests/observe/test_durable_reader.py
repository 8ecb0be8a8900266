"""The durable reader: every mode reads the same truth, `auto` picks the right one and is not
fooled by the harness's tables, and a reader never writes (real PostgreSQL; Node.js for the
one-table store, skipped without it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from harness.authstate import PostgresAuthStore
from harness.chaos.values import ValueFactory, digest
from harness.metrics.history import CREDS, KeyRef
from harness.node_target.errors import NodeUnavailable
from harness.observe import open_reader
from harness.targets import TargetSpec, resolve_target

HERE = Path(__file__).resolve().parent
SNAPSHOT_TARGET = f"{HERE / 'observe_targets.py'}:with_snapshot"
WRITES_ON_LOAD = f"{HERE / 'observe_targets.py'}:writes_on_load"
KV_ADAPTER = "node:examples/node-kv-store/adapter.js"
KV_SNAPSHOT = "node:examples/node-kv-store/snapshot.js"
ABSENT: KeyRef = ("session", "never-written.0")

sys.path.insert(0, str(HERE.parents[1] / "tests" / "node_target"))
from node_bridge_support import require_node  # noqa: E402


def node_spec(spec: str) -> TargetSpec:
    require_node()
    try:
        return resolve_target(spec)
    except NodeUnavailable as exc:
        pytest.skip(f"{exc.message}. To enable: {exc.hint}")


async def write_companies(target: Any, companies: list[str], values: ValueFactory
                          ) -> tuple[dict[str, set[KeyRef]], dict[tuple[str, KeyRef], str]]:
    """Paired creds for even companies, keys for all but the last; a deleted key each.
    Returns (refs asked for per company, digest of every value written and kept)."""
    refs: dict[str, set[KeyRef]] = {}
    written: dict[tuple[str, KeyRef], str] = {}
    for n, company in enumerate(companies):
        state = await target.load(company)
        refs[company] = {CREDS, ABSENT}
        if n % 2 == 0:
            state.creds.clear()
            state.creds.update(values.paired_creds("5511"))
            await state.save_creds()
            written[(company, CREDS)] = digest(state.creds)
        if n == len(companies) - 1:
            continue
        data: dict[str, dict[str, Any]] = {"pre-key": values.pre_keys(1, 3),
                                           "session": {f"55{n}.0": values.session(900)},
                                           "sender-key-memory": {"g@g.us": {"55.1": True}}}
        await state.keys.set(data)
        await state.keys.set({"pre-key": {"2": None}})
        for key_type, entries in data.items():
            for key_id, value in entries.items():
                refs[company].add((key_type, key_id))
                if (key_type, key_id) != ("pre-key", "2"):
                    written[(company, (key_type, key_id))] = digest(value)
    return refs, written


async def read_with(spec: TargetSpec, dsn: str, work: Path, mode: Any,
                    refs: dict[str, set[KeyRef]]) -> tuple[str, dict, dict]:
    async with open_reader(spec, dsn, work, mode=mode, companies=list(refs)) as reader:
        final = await reader.read_all(list(refs), refs)
        assert not final.unreadable, final.unreadable
        return reader.mode, final.final, final.final_meta


def expected_values(refs: dict[str, set[KeyRef]], written: dict) -> dict:
    return {(c, ref): written.get((c, ref)) for c, rs in refs.items() for ref in rs}


async def test_reader_modes_agree_on_the_same_data(pg_dsn: str, tmp_path: Path) -> None:
    """sql, fresh-instance and snapshot read the same digests; `auto` picks sql for the
    harness's own store and for a store on its tables."""
    spec = resolve_target(SNAPSHOT_TARGET)
    target = await spec.open(pg_dsn, cache_dir=tmp_path / "writer")
    try:
        refs, written = await write_companies(target, [f"co{i}" for i in range(5)],
                                              ValueFactory("agree"))
    finally:
        await target.close()
    expected = expected_values(refs, written)
    conn = await asyncpg.connect(pg_dsn)  # a row nobody wrote through the store
    try:
        await conn.execute("INSERT INTO whatsapp_keys (company_id, key_type, key_id, value) "
                           "VALUES ('co0', 'session', 'stray.0', '{\"x\": 1}')")
    finally:
        await conn.close()
    reads = {mode: await read_with(spec, pg_dsn, tmp_path, mode, refs)
             for mode in ("sql", "fresh-instance", "snapshot", "auto")}
    for mode, (used, final, meta) in reads.items():
        assert {k: final.get(k) for k in expected} == expected, mode
        assert used == (mode if mode != "auto" else "sql")
        for company in refs:  # paired creds are not fresh, whoever reads them
            if (company, CREDS) in written:
                assert meta[(company, CREDS)] == {"fresh": False}, mode
    # fresh-instance sees absent creds as a new pod does: fresh ones, reported as absent
    assert reads["fresh-instance"][2][("co1", CREDS)] == {"fresh": True}
    assert reads["sql"][1][("co1", CREDS)] is None
    stray = ("co0", ("session", "stray.0"))
    for mode in ("sql", "snapshot"):  # they list every row: a value nobody wrote is seen
        assert {k for k in reads[mode][1] if k not in expected} == {stray}, mode
        assert reads[mode][1][stray] == digest({"x": 1})
    assert stray not in reads["fresh-instance"][1], "a fresh instance reads what it is asked"
    assert (await read_with(resolve_target("reference"), pg_dsn, tmp_path, "auto", refs))[0] \
        == "sql"


async def test_a_reader_never_writes_and_names_a_store_that_tried(pg_dsn: str,
                                                                  tmp_path: Path) -> None:
    """The fresh instance runs read-only: a store that saves fresh creds on load cannot, the
    company is reported unreadable with the reason, and PostgreSQL still holds no creds."""
    spec = resolve_target(WRITES_ON_LOAD)
    await (await spec.open(pg_dsn, cache_dir=tmp_path / "writer")).close()  # the schema
    async with open_reader(spec, pg_dsn, tmp_path, mode="fresh-instance") as reader:
        final = await reader.read_all(["ghost"], {"ghost": [ABSENT]})
    assert "tried to write" in final.unreadable["ghost"], final.unreadable
    assert ("ghost", CREDS) not in final.final, "an unread company is not 'absent'"
    assert final.notes and "unreadable" in final.notes[0]
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM whatsapp_auth") == 0
    finally:
        await conn.close()


@pytest.mark.slow
async def test_one_table_node_store_is_read_by_a_fresh_instance(pg_dsn: str,
                                                               tmp_path: Path) -> None:
    """A store with its own one-table schema: `auto` is not fooled by the empty harness tables
    the bridge created, nor by stale rows of the same companies there; the fresh instance and
    the module's snapshot() read exactly what was written."""
    spec = node_spec(KV_ADAPTER)
    target = await spec.open(pg_dsn, cache_dir=tmp_path / "writer")
    try:
        refs, written = await write_companies(target, ["a_b", "axb", "a", "a-1"],
                                              ValueFactory("kv"))
    finally:
        await target.close()
    expected = expected_values(refs, written)
    used, final, _ = await read_with(spec, pg_dsn, tmp_path, "auto", refs)
    assert used == "fresh-instance"
    assert {k: final.get(k) for k in expected} == expected
    # stale rows of the same companies in the harness's tables (another store's, long ago)
    other = await PostgresAuthStore.open(pg_dsn)
    try:
        await write_companies(other, list(refs), ValueFactory("stale"))
    finally:
        await other.close()
    used, final, _ = await read_with(spec, pg_dsn, tmp_path, "auto", refs)
    assert used == "fresh-instance", "rows the target does not serve are not its storage"
    assert {k: final.get(k) for k in expected} == expected
    used, final, _ = await read_with(node_spec(KV_SNAPSHOT), pg_dsn, tmp_path, "auto", refs)
    assert used == "snapshot"
    assert {k: final.get(k) for k in expected} == expected
