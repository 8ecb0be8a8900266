"""Replay SQL on real PostgreSQL: last operation wins, idempotent, newer rows are conflicts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from harness.authstate.resilient.clock import ServerClock
from harness.authstate.resilient.records import JournalRecord
from harness.authstate.resilient.replay import apply_batch, plan
from harness.authstate.schema import migrate


@pytest.fixture
async def conn(pg_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(pg_dsn)
    await migrate(c)
    try:
        yield c
    finally:
        await c.close()


def _keys(seq: int, at: float, rows: list[tuple[str, str, str | None]],
          company: str = "acme") -> JournalRecord:
    return JournalRecord(seq, company, "keys", at, rows=rows)


async def _rows(conn: asyncpg.Connection) -> dict[tuple[str, str, str], str]:
    rows = await conn.fetch("SELECT company_id, key_type, key_id, value::text FROM whatsapp_keys")
    return {(r[0], r[1], r[2]): r[3] for r in rows}


def test_plan_keeps_the_last_operation_per_row() -> None:
    p = plan([_keys(1, 1.0, [("session", "a", '{"v":1}'), ("session", "b", '{"v":1}')]),
              _keys(2, 2.0, [("session", "a", None)]),
              _keys(3, 3.0, [("session", "b", '{"v":3}')]),
              JournalRecord(4, "acme", "creds", 4.0, creds='{"c":1}'),
              JournalRecord(5, "acme", "creds", 5.0, creds='{"c":2}')])
    assert [(r.company, r.key_type, r.at, r.ids, r.texts) for r in p.runs] == [
        ("acme", "session", 3.0, ["b"], ['{"v":3}'])]
    assert (p.del_i, p.del_at) == (["a"], [2.0])
    assert (p.creds_v, p.creds_at) == (['{"c":2}'], [5.0])
    assert p.rows == 3


def test_plan_groups_rows_by_the_record_and_type_that_wrote_them() -> None:
    p = plan([_keys(1, 1.0, [("pre-key", str(i), "{}") for i in range(100)]
                    + [("session", "s", "{}")]),
              _keys(2, 2.0, [("pre-key", "7", '{"n":2}')])])
    runs = {(r.key_type, r.at): r.ids for r in p.runs}
    assert runs[("pre-key", 2.0)] == ["7"]
    assert len(runs[("pre-key", 1.0)]) == 99 and "7" not in runs[("pre-key", 1.0)]
    assert runs[("session", 1.0)] == ["s"]


async def test_replay_applies_writes_deletes_and_creds_in_order(conn: asyncpg.Connection) -> None:
    now = time.time()
    await conn.execute("INSERT INTO whatsapp_keys (company_id, key_type, key_id, value, "
                       "updated_at) VALUES ('acme', 'pre-key', '9', '{}', to_timestamp($1))",
                       now - 60)
    batch = [_keys(1, now, [("session", "a", '{"v": 1}'), ("pre-key", "9", None)]),
             _keys(2, now + 0.1, [("session", "a", '{"v": 2}'), ("session", "b", '{"v": 1}')],
                   company="beta"),
             _keys(3, now + 0.2, [("session", "a", '{"v": 3}')]),
             JournalRecord(4, "acme", "creds", now + 0.3, creds='{"me": 1}')]
    result = await apply_batch(conn, batch)
    assert result.conflicts == [] and result.records == 4
    assert await _rows(conn) == {("acme", "session", "a"): '{"v": 3}',
                                 ("beta", "session", "a"): '{"v": 2}',
                                 ("beta", "session", "b"): '{"v": 1}'}
    assert await conn.fetchval("SELECT creds::text FROM whatsapp_auth") == '{"me": 1}'
    row = await conn.fetchrow("SELECT extract(epoch FROM updated_at)::float8 AS u, "
                              "extract(epoch FROM expires_at - updated_at)::int AS ttl "
                              "FROM whatsapp_keys WHERE company_id='acme'")
    assert row["u"] == pytest.approx(now + 0.2, abs=1e-5)  # the acknowledgement time
    assert row["ttl"] == 7 * 86400


async def test_replaying_a_batch_twice_changes_nothing(conn: asyncpg.Connection) -> None:
    now = time.time()
    batch = [_keys(1, now, [("session", "a", '{"v": 1}'), ("session", "b", None)]),
             JournalRecord(2, "acme", "creds", now, creds='{"me": 1}')]
    await apply_batch(conn, batch)
    first = await conn.fetch("SELECT * FROM whatsapp_keys ORDER BY key_id")
    again = await apply_batch(conn, batch)
    assert again.conflicts == []
    assert await conn.fetch("SELECT * FROM whatsapp_keys ORDER BY key_id") == first


async def test_newer_rows_are_kept_and_counted_as_conflicts(conn: asyncpg.Connection) -> None:
    acked = time.time() - 10  # our writes were acknowledged 10 s ago...
    # ...and another instance wrote these since (server now()):
    await conn.execute("""
        INSERT INTO whatsapp_keys (company_id, key_type, key_id, value) VALUES
        ('acme', 'session', 'upserted', '{"theirs": 1}'),
        ('acme', 'session', 'deleted', '{"theirs": 2}');
        INSERT INTO whatsapp_auth (company_id, creds) VALUES ('acme', '{"theirs": 3}');
    """)
    batch = [_keys(1, acked, [("session", "upserted", '{"ours": 1}'),
                              ("session", "deleted", None),
                              ("session", "fresh", '{"ours": 4}')]),
             JournalRecord(2, "acme", "creds", acked, creds='{"ours": 3}')]
    result = await apply_batch(conn, batch)
    assert sorted(result.conflicts) == [("acme", "creds", ""), ("acme", "session", "deleted"),
                                        ("acme", "session", "upserted")]
    assert await _rows(conn) == {("acme", "session", "upserted"): '{"theirs": 1}',
                                 ("acme", "session", "deleted"): '{"theirs": 2}',
                                 ("acme", "session", "fresh"): '{"ours": 4}'}
    assert await conn.fetchval("SELECT creds::text FROM whatsapp_auth") == '{"theirs": 3}'


async def test_older_rows_are_replaced(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO whatsapp_keys (company_id, key_type, key_id, value) VALUES "
                       "('acme', 'session', 'x', '{\"old\": 1}')")
    clock = ServerClock()
    await clock.measure(conn)
    result = await apply_batch(conn, [_keys(1, clock.now(), [("session", "x", '{"new": 1}')])])
    assert result.conflicts == []
    assert await _rows(conn) == {("acme", "session", "x"): '{"new": 1}'}


async def test_server_clock_tracks_the_server_and_never_goes_back(
        conn: asyncpg.Connection) -> None:
    clock = ServerClock()
    await clock.measure(conn)
    assert clock.rtt is not None and clock.rtt >= 0
    server = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
    assert abs(clock.now() - server) < 1.0  # same host: the offset is tiny
    clock.offset -= 100  # the clock was re-measured lower: stamps still do not go back
    stamps = [clock.now() for _ in range(3)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3


@pytest.mark.parametrize("run_rows", [1, 100])  # small runs share a statement; large ones not
async def test_conflicts_are_found_in_small_and_large_runs(conn: asyncpg.Connection,
                                                           run_rows: int) -> None:
    acked = time.time() - 10
    await conn.execute("INSERT INTO whatsapp_keys (company_id, key_type, key_id, value) "
                       "VALUES ('c0', 'session', '0', '{\"theirs\": 1}')")
    batch = [_keys(n + 1, acked, [("session", str(i), '{"ours": 1}') for i in range(run_rows)],
                   company=f"c{n}") for n in range(3)]
    result = await apply_batch(conn, batch)
    assert result.conflicts == [("c0", "session", "0")]
    rows = await _rows(conn)
    assert len(rows) == 3 * run_rows
    assert rows[("c0", "session", "0")] == '{"theirs": 1}'


async def test_stamps_are_never_below_a_server_time_read_before_them(
        conn: asyncpg.Connection) -> None:
    """What keeps replay from skipping our own newer write: a journal stamp taken after a
    direct write completed is at least that write's `now()`."""
    clock = ServerClock()
    await clock.measure(conn)
    for _ in range(50):
        server_then = await conn.fetchval("SELECT extract(epoch FROM now())::float8")
        assert clock.now() >= server_then
