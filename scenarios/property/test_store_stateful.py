"""A model beside the real thing: random sequences of store operations across companies and key
types, checked after every step against a plain in-memory dictionary.

Catches what single-operation properties cannot: deletes that leak across tenants or types,
writes lost or resurrected by later calls, `companies()` drifting from reality, creds of one
company changing another's, falsy values returned for keys that exist.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)

from fixtures.strategies import (
    company_ids,
    creds,
    key_entries,
    key_type_values,
    storable_text,
)
from harness.authstate import PostgresAuthStore
from harness.authstate import key_types as kt
from harness.authstate.key_types import is_js_falsy

Key = tuple[str, str, str]  # (company, type, id)


class StoreMachine(RuleBasedStateMachine):
    """Drives one PostgresAuthStore and an in-memory model with the same operations."""

    companies = Bundle("companies")
    written = Bundle("written")  # (company, type, id) that were set at some point

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dsn = dsn
        self.store: PostgresAuthStore = self.run(PostgresAuthStore.open(dsn, max_size=3))
        self.run(self._wipe())
        self.keys: dict[Key, Any] = {}
        self.creds: dict[str, dict[str, Any]] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def _wipe(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute("TRUNCATE whatsapp_keys, whatsapp_auth")
        finally:
            await conn.close()

    # -- companies ------------------------------------------------------------------------------
    @initialize(target=companies, ids=st.lists(company_ids(), min_size=2, max_size=3,
                                               unique=True))
    def make_companies(self, ids: list[str]) -> Any:
        return multiple(*ids)

    # -- writes ---------------------------------------------------------------------------------
    @rule(target=written, company=companies, batch=key_type_values(max_ids=3))
    def set_keys(self, company: str, batch: tuple[str, dict[str, Any]]) -> Any:
        key_type, entries = batch
        self.run(self.store.set_keys(company, {key_type: entries}))
        for key_id, value in entries.items():
            self.keys[(company, key_type, key_id)] = value
        return multiple(*((company, key_type, k) for k in entries))

    @rule(company=companies, first=key_type_values(max_ids=2),
          second=key_type_values(max_ids=2), deletes=st.lists(written, max_size=3))
    def set_across_types_with_deletes(self, company: str, first: Any, second: Any,
                                      deletes: list[Key]) -> None:
        data: dict[str, dict[str, Any]] = {}
        for key_type, entries in (first, second):
            data.setdefault(key_type, {}).update(entries)
        for owner, key_type, key_id in deletes:
            if owner == company:
                data.setdefault(key_type, {})[key_id] = None
        self.run(self.store.set_keys(company, data))
        for key_type, entries in data.items():
            for key_id, value in entries.items():
                if value is None:
                    self.keys.pop((company, key_type, key_id), None)
                else:
                    self.keys[(company, key_type, key_id)] = value

    @rule(key=consumes(written), falsy=st.sampled_from([None, False, 0, ""]))
    def delete_key(self, key: Key, falsy: Any) -> None:
        company, key_type, key_id = key
        self.run(self.store.set_keys(company, {key_type: {key_id: falsy}}))
        self.keys.pop(key, None)

    @rule(key=written, data=st.data())
    def overwrite_key(self, key: Key, data: st.DataObject) -> None:
        company, key_type, key_id = key
        value = data.draw(key_entries(key_type))[1]
        self.run(self.store.set_keys(company, {key_type: {key_id: value}}))
        self.keys[key] = value

    @rule(company=companies, value=creds())
    def save_creds(self, company: str, value: dict[str, Any]) -> None:
        state = self.run(self.store.load(company))
        state.creds = value
        self.run(state.save_creds())
        self.creds[company] = value

    @rule(company=companies)
    def clear_keys(self, company: str) -> None:
        self.run(self.store.clear_keys(company))
        self.keys = {k: v for k, v in self.keys.items() if k[0] != company}

    @rule(company=companies)
    def delete_company(self, company: str) -> None:
        self.run(self.store.delete_company(company))
        self.keys = {k: v for k, v in self.keys.items() if k[0] != company}
        self.creds.pop(company, None)

    # -- reads ----------------------------------------------------------------------------------
    @rule(key=written, others=st.lists(written, max_size=4),
          missing=st.lists(storable_text(max_size=5).map(lambda s: "missing:" + s),
                           max_size=2))
    def get_matches_model(self, key: Key, others: list[Key], missing: list[str]) -> None:
        company, key_type, _ = key
        ids = [key[2]] + [o[2] for o in others] + missing
        got = self.run(self.store.get_keys(company, key_type, ids))
        expected = {i: self.keys[(company, key_type, i)] for i in ids
                    if (company, key_type, i) in self.keys}
        assert got == expected
        assert not any(is_js_falsy(v) for v in got.values())

    @rule(company=companies)
    def load_matches_model(self, company: str) -> None:
        state = self.run(self.store.load(company))
        if company in self.creds:
            assert state.creds == self.creds[company]
        else:  # fresh creds, shaped like initAuthCreds(), and not written by loading
            assert state.creds["registrationId"] < 16384 and "noiseKey" in state.creds
            assert self.run(self.store.read_creds(company)) is None

    # -- invariants -----------------------------------------------------------------------------
    @invariant()
    def companies_match_model(self) -> None:
        expected = sorted({k[0] for k in self.keys} | set(self.creds))
        assert self.run(self.store.companies()) == expected

    @invariant()
    def row_count_matches_model(self) -> None:
        async def count() -> int:
            async with self.store.pool.acquire() as conn:
                return int(await conn.fetchval("SELECT count(*) FROM whatsapp_keys"))

        assert self.run(count()) == len(self.keys)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()


def test_store_behaves_like_the_model(pg_dsn: str) -> None:
    base = settings()  # the active profile (dev / ci / thorough) sets max_examples
    run_state_machine_as_test(
        lambda: StoreMachine(pg_dsn),
        settings=settings(base, max_examples=max(10, base.max_examples // 4),
                          stateful_step_count=25))


def test_key_types_cover_baileys_v7() -> None:
    """The machine draws from every key type Baileys v7 uses, so none escapes the model."""
    assert set(kt.KEY_TYPES) == {
        "pre-key", "session", "sender-key", "sender-key-memory", "app-state-sync-key",
        "app-state-sync-version", "lid-mapping", "device-list", "tctoken", "identity-key"}
