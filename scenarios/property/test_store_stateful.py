"""A model beside the real thing: random sequences of operations on the target across companies
and key types, checked after every step against a plain in-memory dictionary.

Catches what single-operation properties cannot: deletes that leak across tenants or types,
writes lost or resurrected by later calls, creds of one company changing another's, falsy values
returned for keys that exist, and the tables drifting from what the target acknowledged (checked
directly in PostgreSQL after the target's `flush()`, when it has one). Optional hooks widen the
machine: `state.keys.clear()` and `delete_company()` become rules, `companies()` an invariant.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
from hypothesis import Phase, find, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fixtures.baileys_types import baileys_key_types
from fixtures.strategies import (
    company_ids,
    creds,
    key_entries,
    key_type_values,
    storable_text,
)
from fixtures.targets import close_target
from harness.authstate import key_types as kt
from harness.authstate.key_types import is_js_falsy
from harness.targets import TargetSpec, settle

Key = tuple[str, str, str]  # (company, type, id)
SETTLE_S = 10.0


class StoreMachine(RuleBasedStateMachine):
    """Drives one target (as Baileys does: one loaded state per company) and an in-memory model
    with the same operations."""

    companies = Bundle("companies")
    written = Bundle("written")  # (company, type, id) that were set at some point

    def __init__(self, spec: TargetSpec, dsn: str, cache_root: Path) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.spec = spec
        self.conn: asyncpg.Connection = self.run(asyncpg.connect(dsn))
        # A new cache_dir per example: what a target keeps on disk must not outlive the wipe.
        cache_dir = Path(tempfile.mkdtemp(prefix="machine-", dir=cache_root))
        self.target: Any = self.run(spec.open(dsn, cache_dir=cache_dir))
        self.run(self.conn.execute("TRUNCATE whatsapp_keys, whatsapp_auth"))
        self.states: dict[str, Any] = {}
        self.keys: dict[Key, Any] = {}
        self.creds: dict[str, dict[str, Any]] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def state(self, company: str) -> Any:
        """The company's state, loaded once and kept, as a Baileys socket keeps it."""
        if company not in self.states:
            self.states[company] = self.run(self.target.load(company))
        return self.states[company]

    def settled(self) -> None:
        assert self.run(settle(self.target, within_s=SETTLE_S)), \
            f"the target did not flush its writes to PostgreSQL within {SETTLE_S:.0f} s"

    def can_clear(self) -> bool:
        return bool(self.states) and callable(getattr(next(iter(self.states.values())).keys,
                                                      "clear", None))

    def can_delete_company(self) -> bool:
        return callable(getattr(self.target, "delete_company", None))

    # -- companies ------------------------------------------------------------------------------
    @initialize(target=companies, ids=st.lists(company_ids(), min_size=2, max_size=3,
                                               unique=True))
    def make_companies(self, ids: list[str]) -> Any:
        for company in ids:
            self.state(company)
        return multiple(*ids)

    # -- writes ---------------------------------------------------------------------------------
    @rule(target=written, company=companies, batch=key_type_values(max_ids=3))
    def set_keys(self, company: str, batch: tuple[str, dict[str, Any]]) -> Any:
        key_type, entries = batch
        self.run(self.state(company).keys.set({key_type: entries}))
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
        self.run(self.state(company).keys.set(data))
        for key_type, entries in data.items():
            for key_id, value in entries.items():
                if value is None:
                    self.keys.pop((company, key_type, key_id), None)
                else:
                    self.keys[(company, key_type, key_id)] = value

    @rule(key=consumes(written), falsy=st.sampled_from([None, False, 0, ""]))
    def delete_key(self, key: Key, falsy: Any) -> None:
        company, key_type, key_id = key
        self.run(self.state(company).keys.set({key_type: {key_id: falsy}}))
        self.keys.pop(key, None)

    @rule(key=written, data=st.data())
    def overwrite_key(self, key: Key, data: st.DataObject) -> None:
        company, key_type, key_id = key
        value = data.draw(key_entries(key_type))[1]
        self.run(self.state(company).keys.set({key_type: {key_id: value}}))
        self.keys[key] = value

    @rule(company=companies, value=creds())
    def save_creds(self, company: str, value: dict[str, Any]) -> None:
        state = self.state(company)
        state.creds = value
        self.run(state.save_creds())
        self.creds[company] = value

    @precondition(can_clear)
    @rule(company=companies)
    def clear_keys(self, company: str) -> None:
        self.run(self.state(company).keys.clear())
        self.keys = {k: v for k, v in self.keys.items() if k[0] != company}

    @precondition(can_delete_company)
    @rule(company=companies)
    def delete_company(self, company: str) -> None:
        self.run(self.target.delete_company(company))
        self.keys = {k: v for k, v in self.keys.items() if k[0] != company}
        self.creds.pop(company, None)
        self.states.pop(company, None)  # logged out: the next use loads afresh

    # -- reads ----------------------------------------------------------------------------------
    @rule(key=written, others=st.lists(written, max_size=4),
          missing=st.lists(storable_text(max_size=5).map(lambda s: "missing:" + s),
                           max_size=2))
    def get_matches_model(self, key: Key, others: list[Key], missing: list[str]) -> None:
        company, key_type, _ = key
        ids = [key[2]] + [o[2] for o in others] + missing
        got = self.run(self.state(company).keys.get(key_type, ids))
        expected = {i: self.keys[(company, key_type, i)] for i in ids
                    if (company, key_type, i) in self.keys}
        assert got == expected
        assert not any(is_js_falsy(v) for v in got.values())

    @rule(company=companies)
    def load_matches_model(self, company: str) -> None:
        state = self.run(self.target.load(company))
        if company in self.creds:
            assert state.creds == self.creds[company]
        else:  # fresh creds, shaped like initAuthCreds(), and not written by loading
            assert state.creds["registrationId"] < 16384 and "noiseKey" in state.creds
            self.settled()
            assert self.run(self.conn.fetchval(
                "SELECT count(*) FROM whatsapp_auth WHERE company_id = $1", company)) == 0

    # -- invariants: the tables hold exactly what the model holds --------------------------------
    @invariant()
    def tables_match_model(self) -> None:
        self.settled()
        rows = self.run(self.conn.fetch(
            "SELECT company_id, key_type, key_id FROM whatsapp_keys"))
        assert {tuple(r) for r in rows} == set(self.keys)
        rows = self.run(self.conn.fetch("SELECT company_id FROM whatsapp_auth"))
        assert {r[0] for r in rows} == set(self.creds)

    @invariant()
    def companies_match_model(self) -> None:
        if callable(getattr(self.target, "companies", None)):
            expected = sorted({k[0] for k in self.keys} | set(self.creds))
            assert self.run(self.target.companies()) == expected

    def teardown(self) -> None:
        try:
            self.run(close_target(self.target, self.spec))
        finally:
            self.run(self.conn.close())
            self.loop.close()


def test_store_behaves_like_the_model(target_spec: TargetSpec, pg_dsn: str,
                                      tmp_path: Path) -> None:
    base = settings()  # the active profile (dev / ci / thorough) sets max_examples
    run_state_machine_as_test(
        lambda: StoreMachine(target_spec, pg_dsn, tmp_path),
        settings=settings(base, max_examples=max(10, base.max_examples // 4),
                          stateful_step_count=25))


def test_the_machine_draws_every_key_type_baileys_declares(baileys_node) -> None:
    """Each type in Baileys' own `SignalDataTypeMap` is one the machine's key writes can draw
    (so no type escapes the model), and every type the machine can draw is one Baileys has."""
    declared = baileys_key_types(baileys_node.package_dir)
    batches = key_type_values(max_ids=3)  # what the machine's write rules draw
    for key_type in sorted(declared):
        found = find(batches, lambda batch, t=key_type: batch[0] == t,
                     settings=settings(max_examples=2000, database=None,
                                       phases=[Phase.generate]))
        assert found[0] == key_type
    assert set(kt.KEY_TYPES) <= declared
