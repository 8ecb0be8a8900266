"""BROKEN ON PURPOSE: forgets the session writes of one contact made while PostgreSQL is away.

The resilient store, with an outage buffer in front of it for `session` keys: while the store
is degraded (its breaker open), session writes are acknowledged and kept in memory, and reads
of those keys are answered from it. When PostgreSQL is back the buffer is written through,
except for one session (each time: a breaker that flaps writes through more than once): one
that turned its ratchet during the outage and sent on the new chain (else the one written most
often). Its buffer is dropped: that session rolls back to its
state before the outage, although the contact already uses the new ratchet key it was sent:
the contact's next message fails with libsignal's "Bad MAC", and the harness must say which
key.

A single lost write is survivable, or fails differently: libsignal re-derives a lost receiving
ratchet, and a lost sending-counter update makes the next message reuse a counter ("Key used
already or never filled"). Bad MAC needs the session to forget a ratchet step it already sent
on: several writes of one key, as here.

    python -m harness run --suite signal --pytest-args "--signal-scenario sever" \\
        --target tests/signal/broken_targets/forgets_session.py:open_store     # exits 1
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from harness.authstate.resilient import ResilientAuthStore


class ForgetsSessionStore:
    def __init__(self, inner: ResilientAuthStore) -> None:
        self.inner = inner
        self.held: dict[tuple[str, str], Any] = {}  # (company, session id) -> value
        self.writes: Counter[tuple[str, str]] = Counter()
        self.forgotten: list[tuple[str, str]] = []

    def degraded(self) -> bool:
        return bool(self.inner.status()["mode"] != "normal")

    async def write_through(self) -> None:
        """PostgreSQL is back: write the held sessions, but forget the busiest one."""
        if not self.held or self.degraded():
            return
        held, self.held = self.held, {}
        victim = await self._victim(held)
        self.writes.clear()
        if victim is not None:
            held.pop(victim, None)  # THE BUG: dropped, though every write was acknowledged
            self.forgotten.append(victim)
        by_company: dict[str, dict[str, Any]] = {}
        for (company, key_id), value in held.items():
            by_company.setdefault(company, {})[key_id] = value
        for company, sessions in by_company.items():
            await self.inner.set_keys(company, {"session": sessions})

    async def _victim(self, held: dict[tuple[str, str], Any]) -> tuple[str, str] | None:
        """A held session whose open session sends on a ratchet key PostgreSQL never saw."""
        for key, _count in self.writes.most_common():
            company, key_id = key
            before = (await self.inner.get_keys(company, "session", [key_id])).get(key_id)
            sending = _sending_chain(held.get(key))
            if sending is not None and sending != _sending_chain(before, any_counter=True):
                return key
        return self.writes.most_common(1)[0][0] if self.writes else None

    async def load(self, company_id: str) -> Any:
        state = await self.inner.load(company_id)
        state.keys = ForgetsSessionKeys(self, company_id)
        return state

    async def flush(self, timeout: float = 10.0) -> bool:  # noqa: ASYNC109 - the targets API
        await self.write_through()
        return await self.inner.flush(timeout=timeout)

    def status(self) -> dict[str, Any]:
        return self.inner.status()

    def last_source(self) -> str | None:
        return self.inner.last_source()

    async def close(self) -> None:
        await self.inner.close()


def _sending_chain(record: Any, *, any_counter: bool = False) -> str | None:
    """The ratchet key the open session of a libsignal session record sends on, if it sent on
    it (counter >= 0) or `any_counter`."""
    sessions = (record or {}).get("_sessions") if isinstance(record, dict) else None
    for session in (sessions or {}).values():
        if (session.get("indexInfo") or {}).get("closed") != -1:
            continue
        pub = ((session.get("currentRatchet") or {}).get("ephemeralKeyPair") or {}).get("pubKey")
        chain = (session.get("chains") or {}).get(pub) or {}
        if any_counter or (chain.get("chainKey") or {}).get("counter", -1) >= 0:
            return str(pub)
    return None


class ForgetsSessionKeys:
    def __init__(self, store: ForgetsSessionStore, company_id: str) -> None:
        self.store, self.company_id = store, company_id

    async def get(self, key_type: str, ids: Iterable[str]) -> dict[str, Any]:
        await self.store.write_through()
        ids = list(ids)
        found: dict[str, Any] = {}
        if key_type == "session":
            for key_id in ids:
                if (self.company_id, key_id) in self.store.held:
                    found[key_id] = self.store.held[(self.company_id, key_id)]
        rest = [i for i in ids if i not in found]
        if rest:
            found.update(await self.store.inner.get_keys(self.company_id, key_type, rest))
        return {k: v for k, v in found.items() if v is not None}

    async def set(self, data: Mapping[str, Mapping[str, Any]]) -> None:
        await self.store.write_through()
        sessions = data.get("session") or {}
        if sessions and self.store.degraded():
            for key_id, value in sessions.items():
                self.store.held[(self.company_id, key_id)] = value
                self.store.writes[(self.company_id, key_id)] += 1
            data = {t: v for t, v in data.items() if t != "session"}
        if data:
            await self.store.inner.set_keys(self.company_id, data)


async def open_store(dsn: str, *, cache_dir: Path) -> ForgetsSessionStore:
    """Forgets one session's writes made during an outage: Bad MAC, attributed to that key."""
    return ForgetsSessionStore(await ResilientAuthStore.open(dsn, cache_dir=cache_dir))
