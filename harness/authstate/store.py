"""The reference auth-state store: Baileys' `AuthenticationState` on PostgreSQL via asyncpg.

    store = await PostgresAuthStore.open(dsn)
    state = await store.load("acme")             # AuthState: .creds, .keys, .save_creds()
    await state.keys.get("pre-key", ["1", "2"])  # {id: value}; missing ids omitted
    await state.keys.set({"pre-key": {"1": v, "2": None}})  # JS-falsy value = delete
    await state.save_creds()
    await store.close()

Guarantees (each has a test):
- Loading creds tells *absent* (fresh `initAuthCreds()`-shaped creds, not written until saved)
  from *error* (`StoreUnavailable`): an outage never yields new creds over paired ones.
- One `keys.set` call is atomic across all its types: one statement when it fits, else one
  transaction; multi-row `unnest` upserts (not one round trip per key); rows sorted so concurrent
  writers lock in the same order; per-type `expires_at`.
- Writes of one company are applied in call order (FIFO lock), so an older session can never
  overwrite a newer one because two saves raced on the pool.
- Every company id, key type, key id, deletion and value is validated and encoded before any
  I/O: a bad input raises and nothing is written.
  Parameterized SQL only; every statement is scoped by company_id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import Any

import asyncpg

from harness.authstate import codec
from harness.authstate.company import validate_company_id
from harness.authstate.creds import init_auth_creds
from harness.authstate.errors import InvalidKey, StoreUnavailable
from harness.authstate.key_types import (
    is_js_falsy,
    ttl_seconds,
    validate_key_id,
    validate_key_type,
)
from harness.authstate.schema import migrate
from harness.dsn import redact

# Rows per statement (arrays, so no 32767-parameter limit applies). Baileys' largest routine
# write, 812 pre-keys, is one statement: no transaction round trips. Encoding is not overlapped
# with the server's work: measured, splitting a write to do so won ~1 % on an idle 2-core machine
# and lost ~4 % on a busy one (the extra statement and wake-ups cost more than they hide).
UPSERT_BATCH = 1000

_GET_KEYS = ("SELECT key_id, value::text FROM whatsapp_keys "
             "WHERE company_id = $1 AND key_type = $2 AND key_id = ANY($3::text[])")
_ON_CONFLICT = """
ON CONFLICT (company_id, key_type, key_id) DO UPDATE
SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at, expires_at = EXCLUDED.expires_at
"""
# Rows of several types (one keys.set spanning types).
_UPSERT_KEYS = """
INSERT INTO whatsapp_keys (company_id, key_type, key_id, value, updated_at, expires_at)
SELECT $1, t.key_type, t.key_id, t.value::jsonb, now(), now() + t.ttl * interval '1 second'
FROM unnest($2::text[], $3::text[], $4::text[], $5::int4[]) AS t(key_type, key_id, value, ttl)
""" + _ON_CONFLICT
# Rows of one type (the common case: 812 pre-keys, a batch of sessions): type and TTL are scalars,
# so the server does less per row.
_UPSERT_KEYS_ONE_TYPE = """
INSERT INTO whatsapp_keys (company_id, key_type, key_id, value, updated_at, expires_at)
SELECT $1, $2, t.key_id, t.value::jsonb, now(), now() + $3 * interval '1 second'
FROM unnest($4::text[], $5::text[]) AS t(key_id, value)
""" + _ON_CONFLICT
_DELETE_KEYS = """
DELETE FROM whatsapp_keys
WHERE company_id = $1 AND (key_type, key_id) IN (SELECT * FROM unnest($2::text[], $3::text[]))
"""
_GET_CREDS = "SELECT creds::text FROM whatsapp_auth WHERE company_id = $1"
PUT_CREDS = """
INSERT INTO whatsapp_auth (company_id, creds, updated_at) VALUES ($1, $2::jsonb, now())
ON CONFLICT (company_id) DO UPDATE SET creds = EXCLUDED.creds, updated_at = EXCLUDED.updated_at
"""

DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError,
             OSError, asyncio.TimeoutError)


def _connection_is_suspect(exc: BaseException) -> bool:
    """After these, the connection may be dead or mid-protocol: never give it back to the pool.

    Seen for real: after `pg_terminate_backend`, asyncpg returned the dead connection to the pool
    and the next query failed with InternalClientError ("another operation is in progress").
    A statement timeout (QueryCanceledError) or a plain SQL error leaves the connection healthy.
    """
    if isinstance(exc, asyncpg.QueryCanceledError):
        return False
    return isinstance(exc, (asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                            asyncpg.InternalClientError, asyncpg.OperatorInterventionError,
                            OSError, asyncio.TimeoutError, asyncio.CancelledError))


async def _keep_session_state(conn: asyncpg.Connection) -> None:
    """The pool's `reset` hook: nothing beyond what asyncpg always does on release (roll back an
    open transaction, drop listeners).

    asyncpg's default reset sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release: a second round trip per operation (measured: a point read took
    ~0.36 ms with it, ~0.22 ms without). The store sets no session state, holds no session-level
    advisory locks, cursors or listeners, so there is nothing for it to undo.
    """


class _Lease:
    """`async with store.connection() as conn`: acquire with a timeout; evict suspect ones."""

    __slots__ = ("_conn", "_pool", "_timeout")

    def __init__(self, pool: asyncpg.Pool, timeout: float) -> None:
        self._pool, self._timeout = pool, timeout
        self._conn: asyncpg.Connection | None = None

    async def __aenter__(self) -> asyncpg.Connection:
        pool = self._pool
        if pool.get_idle_size() > 0:  # a connection is free: acquire cannot wait
            self._conn = await pool.acquire()
        else:
            # asyncio.timeout, not acquire(timeout=): asyncpg implements that with wait_for,
            # which creates a task per call (~8 us, measured) on every operation's hot path.
            async with asyncio.timeout(self._timeout):
                self._conn = await pool.acquire()
        return self._conn

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if exc is not None and _connection_is_suspect(exc):
            conn.terminate()  # the pool opens a fresh connection on the next acquire
        await self._pool.release(conn)

KeyWrites = Mapping[str, Mapping[str, Any]]


@contextlib.contextmanager
def _unavailable_on_db_error(operation: str, company_id: str) -> Iterator[None]:
    try:
        yield
    except DB_ERRORS as exc:
        raise StoreUnavailable(
            f"{operation} for company {company_id!r} failed: {type(exc).__name__}: {exc}",
            hint="PostgreSQL is unreachable or failing; the operation did not complete. Retry "
            "when it is back (a resilient wrapper would serve cache and journal writes)",
        ) from exc


class PreparedKeyWrite:
    """A validated, encoded `keys.set` call: rows to upsert (sorted, in batches) and to delete.

    Ids, types, deletions and values are all checked (values by encoding them) before any
    statement exists, so a refused input never reaches the database.
    """

    __slots__ = ("batches", "delete_ids", "delete_types", "upsert_ids", "upsert_ttls",
                 "upsert_types", "upsert_values")

    def __init__(self, data: KeyWrites) -> None:
        upserts: list[tuple[str, str, str, int]] = []
        deletes: list[tuple[str, str]] = []
        if not isinstance(data, Mapping):
            raise InvalidKey(f"keys.set expects {{type: {{id: value}}}}, got {type(data).__name__}")
        for key_type, entries in data.items():
            validate_key_type(key_type)
            if not isinstance(entries, Mapping):
                raise InvalidKey(f"keys.set[{key_type!r}] must be a mapping of id to value, got "
                                 f"{type(entries).__name__}")
            ttl = ttl_seconds(key_type)
            for key_id, value in entries.items():
                validate_key_id(key_id)
                if is_js_falsy(value):
                    deletes.append((key_type, key_id))
                else:
                    upserts.append((key_type, key_id, codec.dumps_for_postgres(value), ttl))
        self._fill(upserts, deletes)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[str, str, str]]) -> PreparedKeyWrite:
        """Upserts of already-encoded, already-validated `(type, id, JSON text)` rows (imports)."""
        self = cls.__new__(cls)
        self._fill([(t, i, text, ttl_seconds(t)) for t, i, text in rows], [])
        return self

    def _fill(self, upserts: list[tuple[str, str, str, int]],
              deletes: list[tuple[str, str]]) -> None:
        """Sort (concurrent writers then take row locks in the same order) and cut into
        statements' row ranges of at most UPSERT_BATCH rows."""
        upserts.sort()  # (type, id) is unique, so the JSON text never decides the order
        deletes.sort()
        self.upsert_types = [r[0] for r in upserts]
        self.upsert_ids = [r[1] for r in upserts]
        self.upsert_values = [r[2] for r in upserts]
        self.upsert_ttls = [r[3] for r in upserts]
        self.delete_types = [r[0] for r in deletes]
        self.delete_ids = [r[1] for r in deletes]
        n = len(upserts)
        self.batches = [slice(i, min(i + UPSERT_BATCH, n)) for i in range(0, n, UPSERT_BATCH)]

    def upsert_statement(self, company_id: str, rows: slice) -> tuple[str, tuple[Any, ...]]:
        types = self.upsert_types
        if types[rows.start] == types[rows.stop - 1]:  # sorted: a single type in this batch
            return (_UPSERT_KEYS_ONE_TYPE, (company_id, types[rows.start],
                                            self.upsert_ttls[rows.start], self.upsert_ids[rows],
                                            self.upsert_values[rows]))
        return (_UPSERT_KEYS, (company_id, types[rows], self.upsert_ids[rows],
                               self.upsert_values[rows], self.upsert_ttls[rows]))

    def statements(self, company_id: str) -> list[tuple[str, tuple[Any, ...]]]:
        """Every statement of the write, upserts first, then the deletes (if any)."""
        out = [self.upsert_statement(company_id, rows) for rows in self.batches]
        if self.delete_ids:
            out.append((_DELETE_KEYS, (company_id, self.delete_types, self.delete_ids)))
        return out


class PostgresAuthStore:
    """Auth state of many companies in one PostgreSQL database, through one asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool, *, acquire_timeout: float,
                 query_timeout: float) -> None:
        self.pool = pool
        self.acquire_timeout = acquire_timeout  # waiting for a pooled connection (exhaustion)
        # Client-side bound on every query (the pool's command_timeout): a black-holed network
        # never answers, so the server's statement_timeout alone cannot end the wait.
        self.query_timeout = query_timeout
        self._key_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._creds_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 10,
                   connect_timeout: float = 10.0, statement_timeout: float = 30.0,
                   command_timeout: float | None = None, statement_cache_size: int = 100,
                   migrate_schema: bool = True) -> PostgresAuthStore:
        """Create the pool (origin defaults: 10 s connect, 30 s statement timeout) and schema.

        `command_timeout` bounds each query client-side (default: statement timeout + 5 s);
        the server's statement timeout cannot fire when the network itself is severed. It is the
        pool's own asyncpg `command_timeout`, so it also bounds queries of code borrowing
        `store.pool`. Released connections are not reset beyond a rollback (see
        `_keep_session_state`): borrowers must not leave session settings, cursors or listeners.
        """
        query_timeout = command_timeout if command_timeout else statement_timeout + 5.0
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, timeout=connect_timeout,
                command_timeout=query_timeout, statement_cache_size=statement_cache_size,
                reset=_keep_session_state,
                server_settings={"application_name": "authstate-harness",
                                 "statement_timeout": str(int(statement_timeout * 1000))})
        except (*DB_ERRORS, ValueError) as exc:
            raise StoreUnavailable(
                f"cannot open the auth-state store at {redact(dsn)}: {type(exc).__name__}: {exc}",
                hint="check the DSN and that PostgreSQL accepts connections from here") from exc
        store = cls(pool, acquire_timeout=connect_timeout, query_timeout=query_timeout)
        if migrate_schema:
            try:
                with _unavailable_on_db_error("schema migration", "*"):
                    async with pool.acquire(timeout=connect_timeout) as conn:
                        await migrate(conn)
            except BaseException:
                await store.close()
                raise
        return store

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.pool.close(), timeout=10)
        except (TimeoutError, *DB_ERRORS):
            self.pool.terminate()

    async def __aenter__(self) -> PostgresAuthStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- creds -----------------------------------------------------------------------------------
    async def read_creds(self, company_id: str) -> dict[str, Any] | None:
        """Stored creds, or None when the company has none. Errors raise StoreUnavailable."""
        company_id = validate_company_id(company_id)
        with _unavailable_on_db_error("loading creds", company_id):
            async with self.connection() as conn:
                text = await conn.fetchval(_GET_CREDS, company_id)
        return None if text is None else codec.loads(text)

    async def write_creds(self, company_id: str, creds: Mapping[str, Any]) -> None:
        """Replace the company's creds (whole blob, as Baileys' saveCreds does)."""
        company_id = validate_company_id(company_id)
        text = codec.dumps_for_postgres(dict(creds))  # snapshot now, before any await
        async with self._creds_locks[company_id]:
            with _unavailable_on_db_error("saving creds", company_id):
                async with self.connection() as conn:
                    await conn.execute(PUT_CREDS, company_id, text)

    async def load(self, company_id: str) -> AuthState:
        """The company's auth state; fresh creds (unsaved) when it has none yet."""
        company_id = validate_company_id(company_id)
        creds = await self.read_creds(company_id)
        return AuthState(self, company_id, creds if creds is not None else init_auth_creds())

    # -- keys ------------------------------------------------------------------------------------
    async def get_keys(self, company_id: str, key_type: str,
                       ids: Iterable[str]) -> dict[str, Any]:
        company_id = validate_company_id(company_id)
        validate_key_type(key_type)
        id_list = ids if isinstance(ids, list) else list(ids)
        for key_id in id_list:
            validate_key_id(key_id)
        if not id_list:
            return {}
        try:
            async with self.connection() as conn:
                rows = await conn.fetch(_GET_KEYS, company_id, key_type, id_list)
        except DB_ERRORS as exc:  # inline, not the context manager: this is the hot path
            with _unavailable_on_db_error(f"reading {key_type} keys", company_id):
                raise exc
        loads = codec.loads
        return {key_id: loads(text) for key_id, text in rows}

    async def set_keys(self, company_id: str, data: KeyWrites) -> None:
        company_id = validate_company_id(company_id)
        statements = PreparedKeyWrite(data).statements(company_id)
        if not statements:
            return
        async with self._key_locks[company_id]:
            with _unavailable_on_db_error("writing keys", company_id):
                async with self.connection() as conn:
                    if len(statements) == 1:  # one statement is atomic alone
                        await conn.execute(statements[0][0], *statements[0][1])
                        return
                    async with conn.transaction():
                        for sql, args in statements:
                            await conn.execute(sql, *args)

    async def clear_keys(self, company_id: str) -> int:
        """Delete every key of the company (Baileys' `keys.clear`); returns the count."""
        company_id = validate_company_id(company_id)
        async with self._key_locks[company_id]:
            with _unavailable_on_db_error("clearing keys", company_id):
                async with self.connection() as conn:
                    status = await conn.execute("DELETE FROM whatsapp_keys WHERE company_id = $1",
                                                company_id)
        return int(status.rsplit(" ", 1)[-1])

    async def delete_company(self, company_id: str) -> None:
        """Remove creds and keys of one company in one transaction (logout)."""
        company_id = validate_company_id(company_id)
        async with self._key_locks[company_id], self._creds_locks[company_id]:
            with _unavailable_on_db_error("deleting company", company_id):
                async with self.connection() as conn, conn.transaction():
                    for table in ("whatsapp_keys", "whatsapp_auth"):
                        await conn.execute(f"DELETE FROM {table} WHERE company_id = $1",
                                           company_id)

    async def companies(self) -> list[str]:
        """Company ids having creds or keys, sorted."""
        with _unavailable_on_db_error("listing companies", "*"):
            async with self.connection() as conn:
                rows = await conn.fetch("SELECT company_id FROM whatsapp_auth UNION "
                                        "SELECT DISTINCT company_id FROM whatsapp_keys ORDER BY 1")
        return [r[0] for r in rows]

    def connection(self) -> _Lease:
        """`async with store.connection() as conn`: a pooled connection (waiting longer than
        `acquire_timeout` raises: pool exhausted); a connection that failed at connection level
        is closed rather than returned to the pool."""
        return _Lease(self.pool, self.acquire_timeout)


    @contextlib.asynccontextmanager
    async def exclusive(self, company_id: str) -> AsyncIterator[None]:
        """Hold the company's write locks: writes of this store wait until the block ends
        (bulk replacement, e.g. an import, must not interleave with live saves)."""
        company_id = validate_company_id(company_id)
        async with self._key_locks[company_id], self._creds_locks[company_id]:
            yield


class SignalKeyStore:
    """`state.keys` of one company: Baileys' SignalKeyStore surface."""

    def __init__(self, store: PostgresAuthStore, company_id: str) -> None:
        self._store = store
        self.company_id = company_id

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        return await self._store.get_keys(self.company_id, key_type, ids)

    async def set(self, data: KeyWrites) -> None:
        await self._store.set_keys(self.company_id, data)

    async def clear(self) -> None:
        await self._store.clear_keys(self.company_id)


class AuthState:
    """Baileys' `{state: {creds, keys}, saveCreds}` for one company."""

    def __init__(self, store: PostgresAuthStore, company_id: str, creds: dict[str, Any]) -> None:
        self.company_id = company_id
        self.creds = creds
        self.keys = SignalKeyStore(store, company_id)
        self._store = store

    async def save_creds(self) -> None:
        await self._store.write_creds(self.company_id, self.creds)
