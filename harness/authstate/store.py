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
- One `keys.set` call is atomic across all its types: multi-row `unnest` statements (not one
  round trip per key), per-type `expires_at`. Upserts only (up to 1000 rows, 812 pre-keys
  included): one statement, one round trip. With deletes (Baileys' pkmsg write: a session upsert
  and a pre-key delete): one statement for upserts and deletes, in a transaction whose opening
  round trip takes the company's lock: three round trips (open, statement, COMMIT).
- Writers of one company never deadlock, across processes too: every key write takes the
  company's advisory lock before any row lock (`sql.py` says why deletes need it first).
- Writes of one company are applied in call order (FIFO lock, held only while a write is in
  flight), so an older session can never overwrite a newer one because two saves raced on the
  pool.
- Every company id, key type, key id, deletion and value is validated and encoded before any
  I/O: a bad input raises and nothing is written.
  Parameterized SQL only (`sql.py`); every statement is scoped by company_id.
- Every failure is a `StoreError` (`errors.py`): retryable `StoreUnavailable` / `StoreTimeout`
  or permanent `StoreRejected`, with `outcome` "failed" (not applied) or "unknown" (a write was
  sent, then the connection was lost or timed out: it may have committed).
- Bounded time: an operation (its wait behind earlier writes of the company, getting a
  connection, every statement including BEGIN/COMMIT) ends within `operation_deadline`, else
  `StoreTimeout`. A connection that timed out is closed, never reused.

Defaults, from measurements (this store, embedded PostgreSQL 18 on a shared 2-core machine whose
load average was ~4 from other work, then also beside a CPU hog `yes > /dev/null`; direct and
through the fault proxy; 5000 point reads, 3000 creds saves, 600 writes of 812 pre-keys, 300
connects, and 50 workers sharing a pool of 10 for 10000 mixed operations), in ms:

                                           shared machine          + CPU hog
    operation                  path     p50   p99 p99.9  max    p50   p99 p99.9  max
    point read (1 pre-key)     direct  0.08   1.4   4.5  6.8   0.17   6.2    13   16
    creds save                 direct   1.0   8.0    13   16    1.1    12    25   51
    keys.set 812 pre-keys      direct    10    76   108  108     19    91   160  160
    connect                    direct   1.9   8.3    12   12    2.6    16    16   16
    read, 50 workers, pool 10  direct   7.0    32    54   82     13    52    83  139
    write, 50 workers, pool 10 direct   8.5    34    44   45     15    67   102  112
    point read (1 pre-key)     proxy   0.20   5.3    13   45   0.13   4.1   8.9   44
    creds save                 proxy   0.52   5.6   9.6   11    2.7    13    23   31
    keys.set 812 pre-keys      proxy     17   108   182  182     12    68   140  140
    connect                    proxy    3.5    12    13   13    3.5    13    41   41
    read, 50 workers, pool 10  proxy     11    31    42   57     12    39    57   71
    write, 50 workers, pool 10 proxy     13    36    48   58     13    47    53   62

The slowest operation seen took 182 ms: the 2 s deadline is 11x that, room for slower disks,
remote servers and checkpoint stalls, while a caller facing a black hole learns it in 2 s, not
the 35 s a query used to wait. The slowest connect took 41 ms; the 1.5 s connect timeout is 36x
that and leaves an operation that had to connect first time for its statement.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from time import monotonic
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from harness.authstate import codec, sql
from harness.authstate.company import validate_company_id
from harness.authstate.company_locks import CompanyLocks
from harness.authstate.connectivity import DEFAULT_STILL_DOWN_EVERY_S, Connectivity
from harness.authstate.creds import init_auth_creds
from harness.authstate.db_errors import DB_ERRORS, classify, connection_unusable
from harness.authstate.errors import InvalidKey, StoreError, StoreUnavailable
from harness.authstate.key_types import (
    is_js_falsy,
    ttl_seconds,
    validate_key_id,
    validate_key_query,
    validate_key_type,
)
from harness.authstate.schema import (
    DEFAULT_MIGRATION_LOCK_TIMEOUT_S,
    SchemaGap,
    migrate,
    schema_gaps,
)
from harness.authstate.state import AuthState, KeyWrites
from harness.dsn import host_port, redact
from harness.errors import ConfigError

# Rows per statement (arrays, so no 32767-parameter limit applies). Baileys' largest routine
# write, 812 pre-keys, is one statement: no transaction round trips. Encoding is not overlapped
# with the server's work: measured, splitting a write to do so won ~1 % on an idle 2-core machine
# and lost ~4 % on a busy one (the extra statement and wake-ups cost more than they hide).
UPSERT_BATCH = 1000

DEFAULT_OPERATION_DEADLINE = 2.0
"""Seconds an operation may take in all: 11x the slowest operation measured (module docstring)."""
DEFAULT_CONNECT_TIMEOUT = 1.5
"""Seconds to open one connection (TCP + TLS + authentication); never above the deadline."""


@dataclass(frozen=True)
class TcpKeepalive:
    """TCP keepalive set on every pooled socket, so the kernel notices a peer that vanished
    silently (cable, NAT or firewall state gone) on connections idling in the pool, instead of
    the next operation finding out by its deadline.

    Defaults: an idle connection is probed after 5 s, then every 2 s; 3 unanswered probes close
    it (a dead idle connection is dropped within ~11 s). `user_timeout_s` (TCP_USER_TIMEOUT,
    Linux) closes a connection whose sent data stays unacknowledged that long; it is above the
    operation deadline, so it only reaps what the deadline already gave up on. Probes are a few
    bytes every 5 s per idle connection. Options the OS lacks are skipped.
    """

    idle_s: int = 5
    interval_s: int = 2
    count: int = 3
    user_timeout_s: float = 10.0

    def apply(self, sock: socket.socket) -> None:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return  # a Unix socket has no TCP options
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        idle = getattr(socket, "TCP_KEEPIDLE", None) or getattr(socket, "TCP_KEEPALIVE", None)
        for option, value in ((idle, self.idle_s),
                              (getattr(socket, "TCP_KEEPINTVL", None), self.interval_s),
                              (getattr(socket, "TCP_KEEPCNT", None), self.count),
                              (getattr(socket, "TCP_USER_TIMEOUT", None),
                               int(self.user_timeout_s * 1000))):
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def _keepalive_init(keepalive: TcpKeepalive | None
                    ) -> Callable[[asyncpg.Connection], Awaitable[None]] | None:
    """The pool's `init` hook: runs once per new connection, before it is used."""
    if keepalive is None:
        return None

    async def init(conn: asyncpg.Connection) -> None:
        # asyncpg exposes no socket accessor; the transport's is the standard asyncio one.
        sock = conn._transport.get_extra_info("socket")
        if sock is not None:
            keepalive.apply(sock)

    return init


async def _keep_session_state(conn: asyncpg.Connection) -> None:
    """The pool's `reset` hook: nothing beyond what asyncpg always does on release (roll back an
    open transaction, drop listeners).

    asyncpg's default reset sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *;
    RESET ALL` on every release: a second round trip per operation (measured: a point read took
    ~0.36 ms with it, ~0.22 ms without). The store sets no session state, holds no session-level
    advisory locks, cursors or listeners, so there is nothing for it to undo.
    """


def _left(until: float) -> float:
    """Seconds left before `until`; TimeoutError (before anything is sent) when none are."""
    left = until - monotonic()
    if left <= 0:
        raise TimeoutError
    return left


def _discard(conn: asyncpg.Connection) -> None:
    """Close a leased connection at once (no goodbye to the server, which rolls back whatever
    it had open). A lost connection has already detached itself from its lease; touching it then
    raises InterfaceError ("released back to the pool"), which used to replace the real error,
    so that case is a no-op."""
    with contextlib.suppress(asyncpg.InterfaceError):
        conn.terminate()


def _detached(conn: asyncpg.Connection) -> bool:
    """True when asyncpg took the connection back from us: it does so, detaching the pool proxy
    we hold, as soon as it sees the socket close (`Connection._cleanup`), and any call on the
    proxy then raises InterfaceError "released back to the pool"."""
    try:
        conn.is_closed()
    except asyncpg.InterfaceError:
        return True
    return False


class _Lease:
    """`async with lease as conn`: a pooled connection within a deadline; one that failed at
    connection level or timed out is closed rather than returned to the pool.

    Also the operation's record for classifying a failure: `stage` (what it was waiting for),
    `sent` (a statement that could commit was sent), `backend_pid` (the server process of the
    connection, read when it was handed out: still known after the connection is lost) and
    `lost` (after a failure: the connection died while leased, so asyncpg's follow-up errors on
    it, whatever their wording, mean a lost connection).
    """

    __slots__ = ("_conn", "_connectivity", "_pool", "backend_pid", "lost", "sent", "stage",
                 "until")

    def __init__(self, pool: asyncpg.Pool, until: float,
                 connectivity: Connectivity | None = None) -> None:
        self._pool, self.until = pool, until
        self._connectivity = connectivity
        self._conn: asyncpg.Connection | None = None
        self.sent = False
        self.stage = "connect"
        self.backend_pid: int | None = None
        self.lost = False

    async def __aenter__(self) -> asyncpg.Connection:
        pool = self._pool
        if pool.get_idle_size() > 0:  # a live connection is free: acquire cannot wait
            conn = await pool.acquire()
        else:
            # asyncio.timeout, not acquire(timeout=): asyncpg implements that with wait_for,
            # which creates a task per call; and only here, off the hot path (~4 us per use).
            async with asyncio.timeout(_left(self.until)):
                conn = await pool.acquire()
        self._conn = conn
        self.backend_pid = conn.get_server_pid()
        self.stage = "answer"
        return conn

    async def __aexit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if exc is None:
            if self._connectivity is not None:
                self._connectivity.succeeded()
        else:
            self.lost = _detached(conn)
            if connection_unusable(exc):
                _discard(conn)  # the pool opens a fresh connection on a later acquire
            else:
                await self._roll_back(conn)
        await self._pool.release(conn)

    async def _roll_back(self, conn: asyncpg.Connection) -> None:
        """After an SQL error inside our transaction: roll back within the deadline, else close
        (left to the pool's release, ROLLBACK would wait up to the command timeout)."""
        try:
            if conn.is_in_transaction():
                await conn.execute("ROLLBACK", timeout=_left(self.until))
        except DB_ERRORS:
            _discard(conn)
        except asyncio.CancelledError:
            _discard(conn)
            raise


def _what_connecting_waits_for(dsn: str, connect_timeout: float) -> str:
    host, port = host_port(dsn)
    return (f"PostgreSQL at {host}:{port} to complete a new connection (TCP connect, TLS, "
            f"startup and authentication; connect_timeout {connect_timeout:g} s)")


def _connect_timed_out(dsn: str, connect_timeout: float) -> str:
    host, port = host_port(dsn)
    return (f"no PostgreSQL connection to {host}:{port} within connect_timeout "
            f"{connect_timeout:g} s: the host dropped the TCP handshake, or accepted it and never "
            "answered PostgreSQL's startup (a black-holed network, a stopped (SIGSTOP) server, or "
            "a listener that is not PostgreSQL)")


POOLER_MODES = ("transaction",)


def _pooler_of(dsn: str, pooler: str | None) -> tuple[str, str | None]:
    """(DSN without our `pooler` query parameter, the pooler mode from it or the option)."""
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    in_dsn = [v for k, v in query if k == "pooler"]
    if in_dsn:
        dsn = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query
                                                          if k != "pooler"])))
        if pooler is not None and pooler != in_dsn[-1]:
            raise ConfigError(f"pooler={pooler!r} contradicts the DSN's pooler={in_dsn[-1]!r}")
        pooler = in_dsn[-1] or None
    if pooler is not None and pooler not in POOLER_MODES:
        raise ConfigError(f"unknown pooler mode {pooler!r}",
                          hint="use pooler=transaction (PgBouncer pool_mode = transaction); "
                          "session pooling needs no option")
    return dsn, pooler


def _check_dsn(dsn: str) -> None:
    """What asyncpg would only find out when connecting (a `create()`d store connects late)."""
    try:
        parts = urlsplit(dsn)
        parts.port  # noqa: B018 - raises ValueError when not a number in range
    except ValueError as exc:
        raise ConfigError(f"invalid PostgreSQL DSN (not shown: it may hold a password): {exc}",
                          hint="use postgresql://user:password@host:5432/database") from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(f"invalid PostgreSQL DSN {redact(dsn)}: the scheme must be "
                          "postgresql:// or postgres://",
                          hint="use postgresql://user:password@host:5432/database")






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

    @property
    def deletes(self) -> bool:
        """True when the write deletes: it must then run in a transaction that took the
        company's lock first (`sql.begin_locked`, see `sql.py`)."""
        return bool(self.delete_ids)

    def upsert_statement(self, company_id: str, rows: slice,
                         stamp: float | None = None) -> tuple[str, tuple[Any, ...]]:
        types = self.upsert_types
        key = sql.lock_key(company_id)
        if types[rows.start] == types[rows.stop - 1]:  # sorted: a single type in this batch
            args: tuple[Any, ...] = (company_id, types[rows.start], self.upsert_ttls[rows.start],
                                     self.upsert_ids[rows], self.upsert_values[rows], key)
            if stamp is None:
                return (sql.UPSERT_KEYS_ONE_TYPE, args)
            return (sql.UPSERT_KEYS_ONE_TYPE_AT, (*args, stamp))
        args = (company_id, types[rows], self.upsert_ids[rows], self.upsert_values[rows],
                self.upsert_ttls[rows], key)
        if stamp is None:
            return (sql.UPSERT_KEYS, args)
        return (sql.UPSERT_KEYS_AT, (*args, stamp))

    def statements(self, company_id: str,
                   stamp: float | None = None) -> list[tuple[str, tuple[Any, ...]]]:
        """Every statement of the write: one per batch of upserts, the deletes riding in the
        first one (`sql.WRITE_KEYS`: a mixed write of up to UPSERT_BATCH upserts is one
        statement). `stamp`: `updated_at` in seconds since the epoch instead of the server's
        `now()`. When `deletes`, run them in a transaction that took the company's lock first."""
        out = [self.upsert_statement(company_id, rows, stamp) for rows in self.batches]
        if not self.delete_ids:
            return out
        deletes = (self.delete_types, self.delete_ids)
        if not out:
            return [(sql.DELETE_KEYS, (company_id, *deletes))]
        rows = self.batches[0]
        args = (company_id, self.upsert_types[rows], self.upsert_ids[rows],
                self.upsert_values[rows], self.upsert_ttls[rows], *deletes)
        out[0] = ((sql.WRITE_KEYS, args) if stamp is None
                  else (sql.WRITE_KEYS_AT, (*args, stamp)))
        return out


async def _execute_atomically(conn: asyncpg.Connection, lease: _Lease, until: float,
                              statements: list[tuple[str, tuple[Any, ...]]],
                              begin: str | None = None) -> str:
    """Run the statements as one unit, each within what is left of the deadline; the status of
    the last one. One statement is atomic alone; more, or any `begin` text (`sql.begin_locked`:
    a company lock, a transaction-local timeout), run in a transaction opened by `begin` (one
    round trip) and ended by COMMIT. Only COMMIT can make them durable, so `sent` is set just
    before COMMIT (a transaction cut off earlier is rolled back by the server: definitely not
    applied).

    `sent` is set after the call that could commit was *made* and before it is awaited: making
    the call sends nothing yet, and it raises at once when asyncpg already took the connection
    back (lost while leased: "released back to the pool"), which is then truthfully "failed"."""
    if len(statements) == 1 and begin is None:
        query, args = statements[0]
        pending = conn.execute(query, *args, timeout=_left(until))
        lease.sent = True
        status: str = await pending
        return status
    await conn.execute(begin or "BEGIN", timeout=_left(until))
    for query, args in statements:
        status = await conn.execute(query, *args, timeout=_left(until))
    pending = conn.execute("COMMIT", timeout=_left(until))
    lease.sent = True
    await pending
    return status


class PostgresAuthStore:
    """Auth state of many companies in one PostgreSQL database, through one asyncpg pool.

    `open()` connects and migrates; `create()` does no I/O at all (a caller can hold a store
    while PostgreSQL is down) and `ensure_schema()` migrates later.
    """

    def __init__(self, pool: asyncpg.Pool, *,
                 operation_deadline: float = DEFAULT_OPERATION_DEADLINE,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
                 command_timeout: float | None = None, pooler: str | None = None,
                 statement_timeout: float = 30.0,
                 connectivity: Connectivity | None = None) -> None:
        self.pool = pool
        # Whole operation: lock wait + acquire (incl. connecting) + every statement.
        self.operation_deadline = operation_deadline
        self.connect_timeout = connect_timeout
        # The pool's asyncpg command_timeout: bounds each query of code borrowing connections
        # through `connection()` (maintenance: exports, cleanup); store operations use the
        # deadline instead.
        self.command_timeout = command_timeout
        self.pooler = pooler
        # Behind a transaction pooler the statement timeout cannot be a session setting: each
        # operation runs in a transaction that sets it (SET LOCAL) in its opening round trip.
        self._timeout_ms = int(statement_timeout * 1000) if pooler else None
        self._begin = sql.begin_locked(None, self._timeout_ms) if pooler else None
        self.connectivity = connectivity or Connectivity("PostgreSQL")
        # Per-company FIFO write locks, kept only while a write holds or awaits them.
        self._key_locks = CompanyLocks()
        self._creds_locks = CompanyLocks()
        # Called with the server process of a write whose caller was cancelled after its
        # commit was sent: the write may still commit (its outcome is unknown), like one that
        # timed out. A caller that will write the same rows again can fence that session.
        self.on_abandoned_write: Callable[[int | None], None] | None = None

    @classmethod
    async def create(cls, dsn: str, *, max_size: int = 10,
                     operation_deadline: float = DEFAULT_OPERATION_DEADLINE,
                     connect_timeout: float | None = None,
                     statement_timeout: float = 30.0, command_timeout: float | None = None,
                     statement_cache_size: int = 100,
                     keepalive: TcpKeepalive | None = TcpKeepalive(),
                     pooler: str | None = None,
                     outage_log_every_s: float = DEFAULT_STILL_DOWN_EVERY_S,
                     clock: Callable[[], float] = monotonic) -> PostgresAuthStore:
        """The store and its pool, without any I/O: the pool opens connections on first use, so
        this succeeds while PostgreSQL is down (each operation then raises a `StoreError` until
        it is back). Call `ensure_schema()` once it is reachable if the tables may be missing.

        `operation_deadline`: seconds an operation may take in all. `connect_timeout`: seconds
        to open one connection (default 1.5 s or the deadline if smaller; never above it).
        `statement_timeout`: the server-side bound (origin default 30 s). `command_timeout`:
        asyncpg's bound on each query of code borrowing connections through `connection()`
        (default statement timeout + 5 s: the server's timeout cannot fire when the network
        itself is gone). Released connections are not reset beyond a rollback (see
        `_keep_session_state`): borrowers must not leave session settings, cursors or
        listeners. `keepalive`: TCP keepalive on every pooled
        socket (None: leave the OS default, usually off).

        `pooler="transaction"` (or `?pooler=transaction` in the DSN): PostgreSQL is reached
        through a pooler in transaction mode (PgBouncer `pool_mode = transaction`), which hands
        each transaction any server connection: the statement timeout is set per transaction
        (`SET LOCAL`, in the round trip that opens it) instead of as a startup parameter
        (PgBouncer refuses unknown startup parameters), and asyncpg's prepared-statement cache
        is off (a statement prepared on one server connection does not exist on the next).
        Every operation then runs in a transaction: 2-3 round trips more than direct.

        `outage_log_every_s`: while operations keep failing because PostgreSQL is unavailable,
        a "still unavailable" line this often (one line when it goes, one when it is back;
        `connectivity.py`); `clock` is that log's clock (tests).
        """
        return await cls._build(dsn, min_size=0, max_size=max_size,
                                operation_deadline=operation_deadline,
                                connect_timeout=connect_timeout,
                                statement_timeout=statement_timeout,
                                command_timeout=command_timeout,
                                statement_cache_size=statement_cache_size, keepalive=keepalive,
                                pooler=pooler, outage_log_every_s=outage_log_every_s,
                                clock=clock)

    @classmethod
    async def open(cls, dsn: str, *, min_size: int = 1, max_size: int = 10,
                   operation_deadline: float = DEFAULT_OPERATION_DEADLINE,
                   connect_timeout: float | None = None,
                   statement_timeout: float = 30.0, command_timeout: float | None = None,
                   statement_cache_size: int = 100,
                   keepalive: TcpKeepalive | None = TcpKeepalive(),
                   migrate_schema: bool = True,
                   migration_lock_timeout: float = DEFAULT_MIGRATION_LOCK_TIMEOUT_S,
                   pooler: str | None = None,
                   outage_log_every_s: float = DEFAULT_STILL_DOWN_EVERY_S,
                   clock: Callable[[], float] = monotonic) -> PostgresAuthStore:
        """`create()`, then open `min_size` connections and create or complete the schema: fails
        fast while PostgreSQL is down (refused at once; a silent network after the connect
        timeout). Options as for `create()`.

        `migrate_schema=False` (production, read-only users, `--no-migrate`): no DDL at all;
        `schema_gaps()` says what is missing and the statement that adds it.
        `migration_lock_timeout`: how long one DDL statement may wait for its table lock (while
        it waits, the table's writers queue behind it); see `schema.migrate`.
        The `min_size` connections are opened once; the pool keeps no floor afterwards
        (connections reopen on demand: asyncpg's floor upkeep logged a traceback per retry
        while PostgreSQL was down)."""
        store = await cls._build(dsn, min_size=min_size, max_size=max_size,
                                 operation_deadline=operation_deadline,
                                 connect_timeout=connect_timeout,
                                 statement_timeout=statement_timeout,
                                 command_timeout=command_timeout,
                                 statement_cache_size=statement_cache_size, keepalive=keepalive,
                                 pooler=pooler, outage_log_every_s=outage_log_every_s,
                                 clock=clock)
        if migrate_schema:
            try:
                await store.ensure_schema(lock_timeout=migration_lock_timeout)
            except BaseException:
                await store.close()
                raise
        return store

    @classmethod
    async def _build(cls, dsn: str, *, min_size: int, max_size: int, operation_deadline: float,
                     connect_timeout: float | None, statement_timeout: float,
                     command_timeout: float | None, statement_cache_size: int,
                     keepalive: TcpKeepalive | None, pooler: str | None,
                     outage_log_every_s: float,
                     clock: Callable[[], float]) -> PostgresAuthStore:
        if not operation_deadline > 0:
            raise ConfigError(f"operation_deadline must be above 0 s, got {operation_deadline}")
        if connect_timeout is None:
            connect_timeout = min(DEFAULT_CONNECT_TIMEOUT, operation_deadline)
        if not 0 < connect_timeout <= operation_deadline:
            raise ConfigError(
                f"connect_timeout ({connect_timeout} s) must be above 0 and at most the "
                f"operation deadline ({operation_deadline} s)",
                hint="an operation that must connect first cannot wait longer than its deadline")
        _check_dsn(dsn)
        dsn, pooler = _pooler_of(dsn, pooler)
        query_timeout = command_timeout if command_timeout else statement_timeout + 5.0
        settings = {"application_name": "authstate-harness"}
        if pooler is None:
            settings["statement_timeout"] = str(int(statement_timeout * 1000))
        else:
            statement_cache_size = 0
        pool = asyncpg.create_pool(
            dsn, min_size=0, max_size=max_size, timeout=connect_timeout,
            command_timeout=query_timeout, statement_cache_size=statement_cache_size,
            reset=_keep_session_state, init=_keepalive_init(keepalive),
            server_settings=settings)
        host, port = host_port(dsn)
        store = cls(pool, operation_deadline=operation_deadline,
                    connect_timeout=connect_timeout, command_timeout=query_timeout,
                    pooler=pooler, statement_timeout=statement_timeout,
                    connectivity=Connectivity(f"{host}:{port}",
                                              still_down_every_s=outage_log_every_s,
                                              clock=clock))
        await pool  # no connection yet (no floor), so no I/O
        if not min_size:
            return store
        started = monotonic()
        try:
            async with asyncio.timeout(connect_timeout):
                opened = await asyncio.gather(*(pool.acquire() for _ in range(min_size)))
            for conn in opened:
                await pool.release(conn)
        except DB_ERRORS as exc:
            pool.terminate()  # sockets a half-opened pool may hold
            cause: BaseException = exc
            if isinstance(exc, TimeoutError) and not str(exc):
                # asyncio's TimeoutError says nothing: name the server and the bound instead
                cause = TimeoutError(_connect_timed_out(dsn, connect_timeout))
                cause.__cause__ = exc
            raise classify(cause, operation=f"opening the auth-state store at {redact(dsn)}",
                           company_id=None, sent=False, waited_s=monotonic() - started,
                           waiting_for=_what_connecting_waits_for(dsn, connect_timeout)
                           ) from cause
        return store

    async def ensure_schema(self, *,
                            lock_timeout: float = DEFAULT_MIGRATION_LOCK_TIMEOUT_S) -> None:
        """Create or complete the schema, live-safe (`schema.migrate`: only what is missing,
        each DDL statement waiting at most `lock_timeout` for its lock, retried with backoff;
        the index built CONCURRENTLY). Getting a connection is bounded by the deadline; the DDL
        by the command timeout, except the concurrent index build (not bounded: it blocks no
        writer, and a cancelled build leaves an invalid index that the next run replaces)."""
        started = monotonic()
        lease = self._lease(started)
        try:
            async with lease as conn:
                lease.sent = True  # DDL; idempotent either way
                await migrate(conn, lock_timeout=lock_timeout, pooler=self.pooler)
        except DB_ERRORS as exc:
            raise self._error(exc, "creating the schema", None, lease, started) from exc

    async def schema_gaps(self) -> list[SchemaGap]:
        """What the store needs and the database lacks, each with the statement that adds it;
        catalog reads only (no table lock, nothing written): for `migrate_schema=False`."""
        started = monotonic()
        lease = self._lease(started)
        try:
            async with lease as conn:
                return await schema_gaps(conn)
        except DB_ERRORS as exc:
            raise self._error(exc, "checking the schema", None, lease, started) from exc

    async def probe(self) -> None:
        """One round trip that succeeds only when PostgreSQL can take writes now: raises
        `StoreUnavailable` (sqlstate 25006) when it is in recovery (a standby) or read-only
        (default_transaction_read_only), other `StoreError`s like any operation."""
        started = monotonic()
        lease = self._lease(started)
        try:
            async with lease as conn:
                in_recovery, read_only = await self._query(conn, lease, conn.fetchrow,
                                                           sql.PROBE)
        except DB_ERRORS as exc:
            raise self._error(exc, "probing PostgreSQL", None, lease, started) from exc
        if in_recovery or read_only:
            why = ("in recovery (a standby, or replaying WAL)" if in_recovery
                   else "read-only (default_transaction_read_only is on)")
            raise StoreUnavailable(
                f"probing PostgreSQL: the server is up but {why}, so it accepts no writes",
                hint="writes fail until it is promoted or made writable; the probe did not "
                "complete and changed nothing. Retry later", operation="probing PostgreSQL",
                outcome="failed",
                waited_s=monotonic() - started, sqlstate="25006")

    async def close(self) -> None:
        """Close the pool: waits for operations in flight (each bounded by the deadline) and says
        goodbye on each connection, for at most the deadline; then closes the sockets outright
        (a black hole never answers the goodbye)."""
        try:
            async with asyncio.timeout(self.operation_deadline):
                await self.pool.close()
        except (TimeoutError, *DB_ERRORS):
            self.pool.terminate()

    async def __aenter__(self) -> PostgresAuthStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- operations' plumbing ----------------------------------------------------------------------
    def _lease(self, started: float) -> _Lease:
        return _Lease(self.pool, started + self.operation_deadline, self.connectivity)

    async def _query(self, conn: asyncpg.Connection, lease: _Lease,
                     method: Callable[..., Awaitable[Any]], query: str, *args: Any) -> Any:
        """One read within the deadline; behind a transaction pooler inside a transaction that
        sets the statement timeout (a read-only transaction: nothing to commit or lose)."""
        if self._begin is None:
            return await method(query, *args, timeout=_left(lease.until))
        await conn.execute(self._begin, timeout=_left(lease.until))
        result = await method(query, *args, timeout=_left(lease.until))
        await conn.execute("COMMIT", timeout=_left(lease.until))
        return result

    def _error(self, exc: BaseException, operation: str, company_id: str | None, lease: _Lease,
               started: float) -> StoreError:
        if lease.stage == "answer":
            waiting_for = "PostgreSQL's answer"
        elif lease.stage == "queue":
            waiting_for = "earlier writes of the same company"
        elif self.pool.get_idle_size() == 0 and self.pool.get_size() >= self.pool.get_max_size():
            waiting_for = (f"a free pooled connection (all {self.pool.get_max_size()} in use: "
                           "raise max_size or lower the concurrency)")
        else:
            waiting_for = "a connection to PostgreSQL"
        error = classify(exc, operation=operation, company_id=company_id, sent=lease.sent,
                         waited_s=monotonic() - started, waiting_for=waiting_for,
                         backend_pid=lease.backend_pid, connection_lost=lease.lost)
        self.connectivity.failed(error)
        return error

    async def _write(self, operation: str, company_id: str, locks: tuple[CompanyLocks, ...],
                     statements: list[tuple[str, tuple[Any, ...]]], *,
                     lock_company: bool = False) -> str:
        """Run a write under the company's locks (call order), all within the deadline;
        `lock_company`: in a transaction that takes the company's database lock first (writes
        that delete keys: see `sql.py`)."""
        started = monotonic()
        lease = self._lease(started)
        try:
            async with contextlib.AsyncExitStack() as held:
                lease.stage = "queue"
                for lock in locks:
                    await held.enter_async_context(lock.hold(company_id, lease.until))
                lease.stage = "connect"
                async with lease as conn:
                    begin = (sql.begin_locked(sql.lock_key(company_id), self._timeout_ms)
                             if lock_company else self._begin)
                    return await _execute_atomically(conn, lease, lease.until, statements, begin)
        except DB_ERRORS as exc:
            raise self._error(exc, operation, company_id, lease, started) from exc
        except asyncio.CancelledError:
            if lease.sent and self.on_abandoned_write is not None:
                self.on_abandoned_write(lease.backend_pid)
            raise

    # -- creds -----------------------------------------------------------------------------------
    async def read_creds_text(self, company_id: str) -> str | None:
        """The company's creds as stored (JSON text), or None when it has none."""
        company_id = validate_company_id(company_id)
        started = monotonic()
        lease = self._lease(started)
        try:
            async with lease as conn:
                text: str | None = await self._query(conn, lease, conn.fetchval,
                                                     sql.GET_CREDS, company_id)
        except DB_ERRORS as exc:
            raise self._error(exc, "loading creds", company_id, lease, started) from exc
        return text

    async def read_creds(self, company_id: str) -> dict[str, Any] | None:
        """Stored creds, or None when the company has none. Errors raise StoreError."""
        text = await self.read_creds_text(company_id)
        return None if text is None else codec.loads(text)

    async def write_creds_text(self, company_id: str, text: str, *,
                               stamp: float | None = None) -> None:
        """Replace the company's creds with `text`, JSON as `codec.dumps_for_postgres` makes it
        (callers that already hold the encoded blob: no second encoding). `stamp`: the row's
        `updated_at` in seconds since the epoch, instead of the server's `now()` when the
        statement runs (a caller that orders its writes by its own clock: see `sql.py`)."""
        company_id = validate_company_id(company_id)
        if not isinstance(text, str):
            raise TypeError(f"creds text must be str, got {type(text).__name__}")
        statement = ((sql.PUT_CREDS, (company_id, text)) if stamp is None
                     else (sql.PUT_CREDS_AT, (company_id, text, stamp)))
        await self._write("saving creds", company_id, (self._creds_locks,),
                          [statement])

    async def write_creds(self, company_id: str, creds: Mapping[str, Any]) -> None:
        """Replace the company's creds (whole blob, as Baileys' saveCreds does)."""
        company_id = validate_company_id(company_id)
        text = codec.dumps_for_postgres(dict(creds))  # snapshot now, before any await
        await self.write_creds_text(company_id, text)

    async def load(self, company_id: str) -> AuthState:
        """The company's auth state; fresh creds (unsaved) when it has none yet."""
        company_id = validate_company_id(company_id)
        creds = await self.read_creds(company_id)
        return AuthState(self, company_id, creds if creds is not None else init_auth_creds())

    # -- keys ------------------------------------------------------------------------------------
    async def _fetch_keys(self, company_id: str, key_type: str,
                          ids: Iterable[str]) -> list[asyncpg.Record]:
        company_id, key_type, id_list = validate_key_query(company_id, key_type, ids)
        if not id_list:
            return []
        started = monotonic()
        until = started + self.operation_deadline
        lease = _Lease(self.pool, until, self.connectivity)
        try:
            async with lease as conn:
                rows: list[asyncpg.Record] = await self._query(
                    conn, lease, conn.fetch, sql.GET_KEYS, company_id, key_type, id_list)
        except DB_ERRORS as exc:
            raise self._error(exc, f"reading {key_type} keys", company_id, lease,
                              started) from exc
        return rows

    async def get_keys(self, company_id: str, key_type: str,
                       ids: Iterable[str]) -> dict[str, Any]:
        """{id: value} of the ids that exist (Baileys' keys.get)."""
        loads = codec.loads
        return {key_id: loads(text)
                for key_id, text in await self._fetch_keys(company_id, key_type, ids)}

    async def get_keys_text(self, company_id: str, key_type: str,
                            ids: Iterable[str]) -> dict[str, str]:
        """{id: JSON text as stored} of the ids that exist (decode with `codec.loads`)."""
        return {key_id: text
                for key_id, text in await self._fetch_keys(company_id, key_type, ids)}

    async def set_keys(self, company_id: str, data: KeyWrites) -> None:
        company_id = validate_company_id(company_id)
        await self.write_prepared(company_id, PreparedKeyWrite(data))

    async def write_prepared(self, company_id: str, prepared: PreparedKeyWrite, *,
                             stamp: float | None = None) -> None:
        """Apply an already validated and encoded `keys.set` (atomic, in call order). `stamp`:
        as for `write_creds_text`."""
        company_id = validate_company_id(company_id)
        statements = prepared.statements(company_id, stamp)
        if statements:
            await self._write("writing keys", company_id, (self._key_locks,),
                              statements, lock_company=prepared.deletes)

    async def clear_keys(self, company_id: str) -> int:
        """Delete every key of the company (Baileys' `keys.clear`); returns the count."""
        company_id = validate_company_id(company_id)
        status = await self._write("clearing keys", company_id, (self._key_locks,),
                                   [(sql.CLEAR_KEYS, (company_id,))], lock_company=True)
        return int(status.rsplit(" ", 1)[-1])

    async def delete_company(self, company_id: str) -> None:
        """Remove creds and keys of one company in one transaction (logout)."""
        company_id = validate_company_id(company_id)
        await self._write("deleting company", company_id,
                          (self._key_locks, self._creds_locks),
                          [(sql.CLEAR_KEYS, (company_id,)), (sql.DELETE_CREDS, (company_id,))],
                          lock_company=True)

    async def companies(self) -> list[str]:
        """Company ids having creds or keys, sorted."""
        started = monotonic()
        lease = self._lease(started)
        try:
            async with lease as conn:
                rows = await self._query(conn, lease, conn.fetch, sql.LIST_COMPANIES)
        except DB_ERRORS as exc:
            raise self._error(exc, "listing companies", None, lease, started) from exc
        return [r[0] for r in rows]

    def connection(self) -> _Lease:
        """`async with store.connection() as conn`: a pooled connection for maintenance code.
        Getting it is bounded by the operation deadline (pool exhausted, PostgreSQL silent:
        TimeoutError); its queries by the command timeout. A connection that failed at
        connection level is closed rather than returned to the pool. After a failure the lease
        says `backend_pid` and `lost` (pass them to `classify`)."""
        return self._lease(monotonic())

    @contextlib.asynccontextmanager
    async def exclusive(self, company_id: str) -> AsyncIterator[None]:
        """Hold the company's write locks: writes of this store wait until the block ends
        (bulk replacement, e.g. an import, must not interleave with live saves); a write that
        waits longer than the deadline fails with `StoreTimeout` (outcome failed)."""
        company_id = validate_company_id(company_id)
        async with self._key_locks.hold(company_id), self._creds_locks.hold(company_id):
            yield
