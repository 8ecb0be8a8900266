"""The `sql` mode: the harness's own tables (`whatsapp_auth`, `whatsapp_keys`), read directly.

For the stores that keep them (ours, and teams' stores on the origin system's schema). Each
stored JSON text is decoded with the harness's codec and digested as the driver digested the
value it wrote. One read-only connection, one query per table per read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

import asyncpg

from harness.metrics.history import CREDS, KeyRef
from harness.observe.reading import (
    CompanyRead,
    DurableReader,
    FinalRead,
    TextDigests,
)
from harness.observe.readonly import read_only_dsn

_TABLES = ("SELECT to_regclass('whatsapp_auth') IS NOT NULL "
           "AND to_regclass('whatsapp_keys') IS NOT NULL")


class SqlReader(DurableReader):
    mode = "sql"

    def __init__(self, conn: asyncpg.Connection, *, tables: bool, dsn: str = "",
                 timeout_s: float = 60.0) -> None:
        self._conn = conn
        self._dsn = dsn  # to connect again after the server went away (process faults)
        self._timeout_s = timeout_s
        self._tables = tables  # both tables exist (else every read is "absent")
        self._lock = asyncio.Lock()  # one connection: one query at a time
        self._digests = TextDigests()
        self.snapshot_ns: int | None = None  # when the last sample's statements were sent
        # (company, ref) -> (row version, digest, meta, decodable) of the last text read
        self._versions: dict[tuple[str, KeyRef], tuple[str, str | None, dict[str, Any], bool]] = {}

    @classmethod
    async def open(cls, dsn: str, *, timeout_s: float = 60.0) -> SqlReader:
        conn = await asyncpg.connect(read_only_dsn(dsn), timeout=min(timeout_s, 15.0),
                                     command_timeout=timeout_s)
        try:
            tables = bool(await conn.fetchval(_TABLES))
        except BaseException:
            await conn.close()
            raise
        return cls(conn, tables=tables, dsn=dsn, timeout_s=timeout_s)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """The reader's connection, one query at a time; a new one when the last was lost
        (PostgreSQL restarted or killed): an observer reads on through a process fault."""
        async with self._lock:
            if self._conn.is_closed() and self._dsn:
                self._conn = await asyncpg.connect(
                    read_only_dsn(self._dsn), timeout=min(self._timeout_s, 5.0),
                    command_timeout=self._timeout_s)
            try:
                yield self._conn
            except BaseException:  # lost, refused, cancelled mid-query: never reuse it
                self._conn.terminate()  # the next read connects again
                raise

    def abort(self) -> None:
        """Drop the connection now (a read that never answered): the next read connects
        again."""
        self._conn.terminate()

    async def companies_with_creds(self, companies: Sequence[str]) -> list[str]:
        """Those of `companies` that have a creds row (sorted), [] without the tables."""
        if not self._tables:
            return []
        async with self._connection() as conn:
            rows = await conn.fetch(
                "SELECT company_id FROM whatsapp_auth WHERE company_id = ANY($1) "
                "ORDER BY company_id", list(companies))
        return [r[0] for r in rows]

    async def sample(self, refs_by_company: Mapping[str, Iterable[KeyRef]]
                     ) -> dict[str, CompanyRead]:
        """Exactly the refs asked for. Each row comes back with its version (`xmin`), and its
        text only when that row version was not read before: an observer asks for the same
        thousands of keys every 100 ms while an outage keeps them out of PostgreSQL, and
        sending their unchanged texts again was most of a sample's cost."""
        wanted = {c: set(refs) for c, refs in refs_by_company.items()}
        out = {c: CompanyRead(c, {ref: None for ref in refs}) for c, refs in wanted.items()}
        if not self._tables:
            return out
        creds_of = [c for c, refs in wanted.items() if CREDS in refs]
        keys = [(c, t, i) for c, refs in wanted.items() for (t, i) in refs if (t, i) != CREDS]
        async with self._connection() as conn:
            creds_rows = await conn.fetch(
                "SELECT a.company_id, a.xmin::text, CASE WHEN a.xmin::text = w.known THEN "
                "NULL ELSE a.creds::text END FROM whatsapp_auth a JOIN unnest($1::text[], "
                "$2::text[]) AS w(c, known) ON a.company_id = w.c",
                creds_of, [self._known((c, CREDS)) for c in creds_of]) if creds_of else []
            # Under READ COMMITTED a statement sees what was committed when it started: every
            # value this sample returns was durable by the moment the last statement was sent
            # (its transfer and decoding afterwards say nothing about durability).
            self.snapshot_ns = time.monotonic_ns()
            key_rows = await conn.fetch(
                "SELECT k.company_id, k.key_type, k.key_id, k.xmin::text, CASE WHEN "
                "k.xmin::text = w.known THEN NULL ELSE k.value::text END FROM whatsapp_keys k "
                "JOIN unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS "
                "w(c, t, i, known) ON k.company_id = w.c AND k.key_type = w.t "
                "AND k.key_id = w.i",
                [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
                [self._known((k[0], (k[1], k[2]))) for k in keys]) if keys else []
        for company, xmin, text in creds_rows:
            self._versioned(out[company], CREDS, xmin, text, creds=True)
        for company, key_type, key_id, xmin, text in key_rows:
            self._versioned(out[company], (key_type, key_id), xmin, text, creds=False)
        return out

    def _known(self, key: tuple[str, KeyRef]) -> str:
        found = self._versions.get(key)
        return "" if found is None else found[0]

    def _versioned(self, read: CompanyRead, ref: KeyRef, xmin: str, text: str | None, *,
                   creds: bool) -> None:
        """Fill `read` from a row: its text, or (None) the version read before."""
        key = (read.company, ref)
        if text is None:
            _, value, meta, ok = self._versions[key]
        else:
            if creds:
                value, meta, ok = self._digests.creds(text)
            else:
                value, ok = self._digests.value(text)
                meta = {}
            self._versions[key] = (xmin, value, meta, ok)
        read.values[ref] = value
        if meta and ok:
            read.meta[ref] = meta
        read.undecodable += not ok

    async def read_all(self, companies: Sequence[str],
                       refs_by_company: Mapping[str, Iterable[KeyRef]] | None = None,
                       *, attempts: int = 3) -> FinalRead:
        """Every row of the companies (keys never asked for too: a value no write made is the
        checker's `unexpected`), plus the refs asked for as absent when they have no row."""
        started = time.monotonic()
        ids = list(companies)
        out = {c: CompanyRead(c, {CREDS: None}) for c in ids}
        for company, refs in (refs_by_company or {}).items():
            if company in out:
                out[company].values.update({ref: None for ref in refs})
        if self._tables:
            async with self._connection() as conn:
                creds_rows = await conn.fetch(
                    "SELECT company_id, creds::text FROM whatsapp_auth "
                    "WHERE company_id = ANY($1)", ids)
                key_rows = await conn.fetch(
                    "SELECT company_id, key_type, key_id, value::text FROM whatsapp_keys "
                    "WHERE company_id = ANY($1)", ids)
            self._fill(out, creds_rows, key_rows)
        final = FinalRead(mode=self.mode)
        for company in ids:
            final.add(out[company])
        final.seconds = time.monotonic() - started
        return final

    def _fill(self, out: dict[str, CompanyRead], creds_rows: Sequence[asyncpg.Record],
              key_rows: Sequence[asyncpg.Record]) -> None:
        for company, text in creds_rows:
            read = out[company]
            value, meta, ok = self._digests.creds(text)
            read.values[CREDS] = value
            if ok:
                read.meta[CREDS] = meta
            read.undecodable += not ok
        for company, key_type, key_id, text in key_rows:
            read = out[company]
            value, ok = self._digests.value(text)
            read.undecodable += not ok
            read.values[(key_type, key_id)] = value

    async def aclose(self) -> None:
        await self._conn.close()
