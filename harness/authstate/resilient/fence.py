"""The fence: no write of ours whose outcome is unknown may land after a newer one.

A write that timed out or lost its connection after it was sent may still commit: its bytes can
sit in the network (a throttled link, a proxy's buffer) and reach PostgreSQL after the link
recovers, though the client closed its socket; or the server may still be executing it. The
resilient store acknowledges such a write through its journal and, once PostgreSQL answers,
replays it and accepts newer writes of the same rows. A straggler committing after those would
replace an acknowledged newer value with an older one, or bring back a row deleted since (a
delete leaves no tombstone, so no timestamp condition can refuse it).

So the store remembers the server process (`pg_backend_pid()`) of every connection that ended a
write with outcome "unknown", with an upper bound of the time it was sent (the server-clock
estimate at the failure, plus `CLOCK_SLACK_S`). Before the breaker lets any statement that
writes reach PostgreSQL again (the replay or a direct write: before it leaves "open"), `run`
terminates those backends and confirms they are gone, in one bounded attempt:

    SELECT pg_terminate_backend(pid, <ms>) FROM pg_stat_activity
    WHERE pid = ANY(...) AND backend_start <= <bound>      -- then: none of them left?

`pg_terminate_backend(pid, timeout)` (PostgreSQL 14+) waits until the process has exited. A
terminated backend commits nothing more: a statement not yet received is never read, one
running is rolled back, one already committing finishes *before* the process exits, that is
before the fence completes. `backend_start <= bound` keeps a recycled pid (a new session that
got the same number later) out. A backend that is gone already (it finished, or the server
restarted: all pids are new) needs nothing. Our own session is excluded.

Roles: terminating a backend of one's own role needs no privilege (the store's connections are
all one role). Where that is refused anyway (42501: EXECUTE on pg_terminate_backend revoked, a
pooler mapping roles), the fence logs once and falls back to waiting until the pids disappear
on their own - the weaker guarantee: it holds as long as they do so within `give_up_s`; after
that the fence is abandoned (logged, counted) so that a session stuck forever cannot keep the
store degraded forever. PostgreSQL before 14 lacks the waiting form: the fence signals, then
polls.

If an attempt does not complete within its deadline, nothing is lost: the breaker stays open
(writes keep going to the journal) and the next successful probe tries again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from time import monotonic

import asyncpg

log = logging.getLogger("harness.authstate.resilient")

# Pids and bounds go in as literals (ints and floats we made ourselves): no array parameters,
# so no type introspection on a fresh connection (asyncpg's ~7 KB query), a few hundred bytes a
# statement - they must pass the link that just recovered (or still crawls) within one
# deadline. TERMINATE runs by the simple protocol and answers with its row count.
_TARGETS = ("SELECT a.pid FROM (VALUES {values}) AS f(pid, at) "
            "JOIN pg_stat_activity a ON a.pid = f.pid "
            "WHERE a.backend_start <= to_timestamp(f.at) AND a.pid <> pg_backend_pid()")
LEFT = "{targets}"
"""Our backends still there (their pids)."""
# The call sits in the select list of a MATERIALIZED CTE over the matched backends only: as a
# WHERE condition of a flattened subquery the planner may evaluate it on every row of
# pg_stat_activity before the join (seen: it terminated every session, its own included).
TERMINATE = ("WITH t AS MATERIALIZED ({targets}), "
             "r AS MATERIALIZED (SELECT pg_terminate_backend(t.pid, {wait_ms}) AS gone FROM t) "
             "SELECT 1 FROM r WHERE NOT r.gone")
"""PostgreSQL 14+: signal each, wait up to wait_ms for it to exit; rows = those still there."""
TERMINATE_NO_WAIT = ("WITH t AS MATERIALIZED ({targets}) "
                     "SELECT pg_terminate_backend(t.pid) FROM t")
POLL_S = 0.02
CLOCK_SLACK_S = 1.0
"""Added to the send-time bound: a server clock read a little behind our estimate must not
hide our own backend (which would skip the fence); a recycled pid within a second would need
the kernel's pid counter to wrap that fast."""
DEFAULT_GIVE_UP_S = 60.0


@dataclass
class Fence:
    """Backends that may still commit one of our writes, and how fencing them went."""

    give_up_s: float = DEFAULT_GIVE_UP_S
    pending: dict[int, float] = field(default_factory=dict)  # pid -> bound (epoch seconds)
    fenced: int = 0  # backends found and confirmed gone (terminated or exited by themselves)
    cleared: int = 0  # backends that were already gone when the fence ran
    abandoned: int = 0  # given up on after give_up_s (the weaker, waiting mode only)
    can_terminate: bool = True  # False after 42501: wait for the pids instead
    can_wait: bool = True  # False before PostgreSQL 14: signal, then poll
    unfenceable: int = 0  # unknown outcomes without a known backend (nothing to fence)
    # when the oldest pending entry was added (monotonic); pending pids found alive at some attempt
    _since: float | None = field(default=None, init=False)
    _seen: set[int] = field(default_factory=set, init=False)

    def add(self, pid: int | None, bound: float) -> None:
        if pid is None:
            self.unfenceable += 1
            return
        bound += CLOCK_SLACK_S
        if bound > self.pending.get(pid, 0.0):
            self.pending[pid] = bound
        if self._since is None:
            self._since = monotonic()

    def snapshot(self) -> dict[str, object]:
        return {"pending": len(self.pending), "fenced": self.fenced, "cleared": self.cleared,
                "abandoned": self.abandoned, "unfenceable": self.unfenceable,
                "mode": "terminate" if self.can_terminate else "wait"}

    async def run(self, conn: asyncpg.Connection, until: float) -> bool:
        """One attempt on `conn`, done by `until` (monotonic): True when every backend pending
        at the start is gone (or abandoned); False when some are still there (retry later).
        Database errors and TimeoutError propagate (the caller retries after its next probe)."""
        work = dict(self.pending)
        if not work:
            return True
        targets = _TARGETS.format(values=", ".join(
            f"({int(pid)}, {float(at)!r}::float8)" for pid, at in work.items()))
        left_sql = LEFT.format(targets=targets)
        present = await _pids(conn, left_sql, until)
        self._seen |= present
        if present and self.can_terminate:
            await self._terminate(conn, targets, until)
        while present:  # confirm: none of them is left (or, waiting mode, wait for that)
            present = await _pids(conn, left_sql, until)
            if not present or monotonic() + POLL_S >= until:
                break
            await asyncio.sleep(POLL_S)
        gone = set(work) - present
        self.fenced += len(gone & self._seen)
        self.cleared += len(gone - self._seen)
        self._seen -= gone
        for pid in gone:
            if self.pending.get(pid) == work[pid]:
                del self.pending[pid]  # (a newer entry for a recycled pid stays)
        if present and not self.can_terminate and self._since is not None and (
                monotonic() - self._since >= self.give_up_s):
            log.warning("fence abandoned after %.0f s: %d PostgreSQL sessions that may still "
                        "commit an older write did not end (terminating them is not "
                        "permitted); newer writes go ahead", self.give_up_s, len(present))
            for pid in present:
                self.pending.pop(pid, None)
            self._seen -= present
            self.abandoned += len(present)
            present = set()
        if not self.pending:
            self._since = None
        return not present

    async def _terminate(self, conn: asyncpg.Connection, targets: str, until: float) -> None:
        try:
            if self.can_wait:
                wait_ms = max(1, int(_left(until) * 800))  # a fifth left for the confirmation
                await _count(conn, TERMINATE.format(targets=targets, wait_ms=wait_ms), until)
            else:
                await _count(conn, TERMINATE_NO_WAIT.format(targets=targets), until)
        except asyncpg.InsufficientPrivilegeError as exc:
            self.can_terminate = False
            log.warning("fence: PostgreSQL refused to terminate our own earlier sessions "
                        "(%s); waiting for them to end instead, for at most %.0f s (a weaker "
                        "guarantee: see harness/authstate/resilient/fence.py)",
                        exc.sqlstate, self.give_up_s)
        except asyncpg.UndefinedFunctionError:
            self.can_wait = False  # before PostgreSQL 14: no waiting form
            await _count(conn, TERMINATE_NO_WAIT.format(targets=targets), until)


async def _count(conn: asyncpg.Connection, query: str, until: float) -> int:
    status: str = await conn.execute(query, timeout=_left(until))
    return int(status.rsplit(" ", 1)[-1])


async def _pids(conn: asyncpg.Connection, query: str, until: float) -> set[int]:
    return {r[0] for r in await conn.fetch(query, timeout=_left(until))}


def _left(until: float) -> float:
    left = until - monotonic()
    if left <= 0:
        raise TimeoutError
    return left
