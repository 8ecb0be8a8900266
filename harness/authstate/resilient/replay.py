"""Replaying journal records into PostgreSQL: idempotent, in order, newest row wins.

A batch (the oldest pending records) is reduced to the last operation per (company, type, id)
and per company's creds, then applied in ONE transaction: one multi-row statement per large run
(the rows of one journaled keys.set, with company, type and time as scalars), one for all small
runs together, one for the deletes, one for creds. Measured on 10 x 812 pre-keys: ~68 ms this
way vs ~112 ms for a single statement with every column per row (and ~97 ms for the same rows
written as ten plain upserts, each its own commit).

- upserts set `updated_at` to the record's acknowledgement time and only replace a row whose
  `updated_at` is not newer (`WHERE whatsapp_keys.updated_at <= EXCLUDED.updated_at`);
- deletes remove a row only if it is not newer than the delete's acknowledgement time;
- creds likewise on `whatsapp_auth`.

Replaying a record twice (a crash after the commit, before the "applied" marker) writes the same
rows with the same times: idempotent. A row that another store instance wrote *after* our write
was acknowledged is left alone and reported as a conflict (key refs only, never values).

Last writer wins by acknowledgement time. Journaled writes are stamped with the server time this
process estimated when it acknowledged them (`clock.ServerClock`: local clock + offset measured
against the server + half the measuring round trip), and the resilient store's direct writes
with the same estimate taken when they were sent (not the server's `now()` at execution: a
write delivered late must not look newer than what was acknowledged after it), so all our
stamps are on one clock that never goes back, and our own journaled write is never stamped
before a direct write we made earlier. Assumptions and limits: the offset is re-measured at
every recovery, so clocks only need to be stable (NTP-disciplined) over one outage, not
synchronized; between two *instances*, writes acknowledged within ~one round trip of each other
may be ordered either way; a row deleted by another instance leaves no tombstone, so replaying
our older upsert of it recreates it (undetectable); `updated_at` written by something else (an
import, a hand edit) with a future time makes our replayed writes of that row lose.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg

from harness.authstate import sql
from harness.authstate.key_types import ttl_seconds
from harness.authstate.resilient.records import KEYS, JournalRecord

# A run of rows of one company, type and acknowledgement time (the rows of one journaled
# keys.set): company, type, time and TTL are scalars, as in the store's own one-type upsert, so the
# server does little more per row than a plain write. ($1 company, $2 type, $3 time, $4 TTL,
# $5 ids, $6 JSON texts)
UPSERT_KEY_RUN = """
INSERT INTO whatsapp_keys AS k (company_id, key_type, key_id, value, updated_at, expires_at)
SELECT $1, $2, t.kid, t.v::jsonb, to_timestamp($3), to_timestamp($3) + $4 * interval '1 second'
FROM unnest($5::text[], $6::text[]) AS t(kid, v)
ON CONFLICT (company_id, key_type, key_id) DO UPDATE
SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
WHERE k.updated_at <= EXCLUDED.updated_at
"""
NEWER_IN_RUN = """
SELECT k.key_id FROM whatsapp_keys k
WHERE k.company_id = $1 AND k.key_type = $2 AND k.key_id = ANY($3::text[])
  AND k.updated_at > to_timestamp($4)
"""
# Many small runs (a session here, a sender key there, from many companies) in one statement,
# with everything per row: one round trip instead of one per run.
UPSERT_KEYS = """
INSERT INTO whatsapp_keys AS k (company_id, key_type, key_id, value, updated_at, expires_at)
SELECT t.c, t.kt, t.kid, t.v::jsonb, to_timestamp(t.at),
       to_timestamp(t.at) + t.ttl * interval '1 second'
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::int4[])
     AS t(c, kt, kid, v, at, ttl)
ON CONFLICT (company_id, key_type, key_id) DO UPDATE
SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
WHERE k.updated_at <= EXCLUDED.updated_at
"""
# Run after UPSERT_KEYS in the same transaction only when it applied fewer rows than it got:
# the rows it skipped are exactly those still newer than the replayed write.
NEWER_KEYS = """
SELECT t.c, t.kt, t.kid
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[]) AS t(c, kt, kid, at)
JOIN whatsapp_keys k ON k.company_id = t.c AND k.key_type = t.kt AND k.key_id = t.kid
WHERE k.updated_at > to_timestamp(t.at)
"""
# Deletes, returning the refs NOT deleted because the row is newer (the outer SELECT sees the
# snapshot taken before the DELETE, in which those rows are still there).
DELETE_KEYS = """
WITH d AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[]) AS t(c, kt, kid, at)
), gone AS (
    DELETE FROM whatsapp_keys k USING d
    WHERE k.company_id = d.c AND k.key_type = d.kt AND k.key_id = d.kid
      AND k.updated_at <= to_timestamp(d.at)
    RETURNING 1
)
SELECT d.c, d.kt, d.kid FROM d
JOIN whatsapp_keys k ON k.company_id = d.c AND k.key_type = d.kt AND k.key_id = d.kid
WHERE k.updated_at > to_timestamp(d.at)
"""
UPSERT_CREDS = """
INSERT INTO whatsapp_auth AS a (company_id, creds, updated_at)
SELECT t.c, t.v::jsonb, to_timestamp(t.at)
FROM unnest($1::text[], $2::text[], $3::float8[]) AS t(c, v, at)
ON CONFLICT (company_id) DO UPDATE
SET creds = EXCLUDED.creds, updated_at = EXCLUDED.updated_at
WHERE a.updated_at <= EXCLUDED.updated_at
"""
NEWER_CREDS = """
SELECT t.c FROM unnest($1::text[], $2::float8[]) AS t(c, at)
JOIN whatsapp_auth a ON a.company_id = t.c
WHERE a.updated_at > to_timestamp(t.at)
"""

ConflictRef = tuple[str, str, str]  # (company, key type or "creds", key id or "")


@dataclass
class ReplayResult:
    records: int = 0
    rows: int = 0  # distinct rows the batch tried to write (after dedupe)
    conflicts: list[ConflictRef] = field(default_factory=list)


RUN_MIN_ROWS = 64
"""Runs of at least this many rows get their own scalar statement; smaller ones share one."""


@dataclass
class KeyRun:
    company: str
    key_type: str
    at: float
    ids: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)


@dataclass
class BatchPlan:
    """A batch reduced to the last operation per row: runs of upserts (rows of one company,
    type and time), deletes and creds as statement arrays."""

    runs: list[KeyRun] = field(default_factory=list)
    del_c: list[str] = field(default_factory=list)
    del_t: list[str] = field(default_factory=list)
    del_i: list[str] = field(default_factory=list)
    del_at: list[float] = field(default_factory=list)
    creds_c: list[str] = field(default_factory=list)
    creds_v: list[str] = field(default_factory=list)
    creds_at: list[float] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(len(r.ids) for r in self.runs) + len(self.del_c) + len(self.creds_c)


def plan(records: Sequence[JournalRecord]) -> BatchPlan:
    """Last operation per (company, type, id) and per company's creds.

    Records are walked newest first, so the first operation seen for a row is its last one and
    older ones are skipped; what is kept stays grouped by the record that wrote it.
    """
    p = BatchPlan()
    seen: set[tuple[str, str, str]] = set()
    creds_seen: set[str] = set()
    for record in reversed(records):
        company, at = record.company, record.at
        if record.kind != KEYS:
            if company not in creds_seen:
                creds_seen.add(company)
                p.creds_c.append(company)
                p.creds_v.append(record.creds)  # type: ignore[arg-type]
                p.creds_at.append(at)
            continue
        runs: dict[str, KeyRun] = {}
        for key_type, key_id, text in record.rows:
            ref = (company, key_type, key_id)
            if ref in seen:
                continue
            seen.add(ref)
            if text is None:
                p.del_c.append(company)
                p.del_t.append(key_type)
                p.del_i.append(key_id)
                p.del_at.append(at)
                continue
            run = runs.get(key_type)
            if run is None:
                run = runs[key_type] = KeyRun(company, key_type, at)
            run.ids.append(key_id)
            run.texts.append(text)
        p.runs.extend(runs.values())
    return p


def _count(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


async def _upsert_run(conn: asyncpg.Connection, run: KeyRun, result: ReplayResult) -> None:
    applied = _count(await conn.execute(UPSERT_KEY_RUN, run.company, run.key_type, run.at,
                                        ttl_seconds(run.key_type), run.ids, run.texts))
    if applied < len(run.ids):
        newer = await conn.fetch(NEWER_IN_RUN, run.company, run.key_type, run.ids, run.at)
        result.conflicts.extend((run.company, run.key_type, r[0]) for r in newer)


async def _upsert_small_runs(conn: asyncpg.Connection, runs: list[KeyRun],
                             result: ReplayResult) -> None:
    c: list[str] = []
    t: list[str] = []
    i: list[str] = []
    v: list[str] = []
    at: list[float] = []
    ttl: list[int] = []
    for run in runs:
        n = len(run.ids)
        c.extend([run.company] * n)
        t.extend([run.key_type] * n)
        i.extend(run.ids)
        v.extend(run.texts)
        at.extend([run.at] * n)
        ttl.extend([ttl_seconds(run.key_type)] * n)
    applied = _count(await conn.execute(UPSERT_KEYS, c, t, i, v, at, ttl))
    if applied < len(c):
        newer = await conn.fetch(NEWER_KEYS, c, t, i, at)
        result.conflicts.extend((r[0], r[1], r[2]) for r in newer)


async def apply_batch(conn: asyncpg.Connection, records: Sequence[JournalRecord]) -> ReplayResult:
    """Apply `records` in one transaction; the rows PostgreSQL held newer are conflicts."""
    p = plan(records)
    result = ReplayResult(records=len(records), rows=p.rows)
    small = [run for run in p.runs if len(run.ids) < RUN_MIN_ROWS]
    async with conn.transaction():
        # every company's key-write lock before any row lock, in one order (see authstate/sql.py)
        await conn.execute(sql.LOCK_COMPANIES,
                           [sql.lock_key(c) for c in {r.company for r in records}])
        for run in p.runs:
            if len(run.ids) >= RUN_MIN_ROWS:
                await _upsert_run(conn, run, result)
        if len(small) == 1:
            await _upsert_run(conn, small[0], result)
        elif small:
            await _upsert_small_runs(conn, small, result)
        if p.del_c:
            rows = await conn.fetch(DELETE_KEYS, p.del_c, p.del_t, p.del_i, p.del_at)
            result.conflicts.extend((r[0], r[1], r[2]) for r in rows)
        if p.creds_c:
            applied = _count(await conn.execute(UPSERT_CREDS, p.creds_c, p.creds_v,
                                                p.creds_at))
            if applied < len(p.creds_c):
                rows = await conn.fetch(NEWER_CREDS, p.creds_c, p.creds_at)
                result.conflicts.extend((r[0], "creds", "") for r in rows)
    return result
