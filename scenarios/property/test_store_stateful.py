"""A model beside the real thing: random sequences of operations on the target across companies
and key types, checked after every step against a plain in-memory dictionary.

Catches what single-operation properties cannot: deletes that leak across tenants or types,
writes lost or resurrected by later calls, creds of one company changing another's, falsy values
returned for keys that exist, and the tables drifting from what the target acknowledged (checked
directly in PostgreSQL after the target's `flush()`, when it has one). Optional hooks widen the
machine: `state.keys.clear()` and `delete_company()` become rules, `companies()` an invariant.

Tenant isolation: the companies of one example are a family of ids a careless store confuses
(`a_b`/`axb`, `a`/`a-1`, `A`/`a`, a 50-character id and its prefixes), and after every step each
company is read from outside (fixtures.tenants): through a new `load` and `keys.get` of every id
any company wrote, and, for stores on the harness's tables, its rows. A company other than the
one the step operated on that changed is anomaly `cross-tenant`.

Stores with their own schema are judged through their read API (and `snapshot()`); the direct
table checks apply to stores that write the harness's tables. Such a store's tables cannot be
wiped between examples, so its companies get a per-example prefix (the family's collisions are
among its own members, which share it).
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from collections.abc import Iterable
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
    company_id_families,
    creds,
    key_entries,
    key_type_values,
    storable_text,
)
from fixtures.targets import close_target, is_ours
from fixtures.tenants import (
    API,
    CREDS,
    ROWS,
    SNAPSHOT,
    View,
    changes,
    cross_tenant,
    digest,
    harness_tables_exist,
    key_ref,
    on_harness_tables,
    read_api,
    read_rows,
    read_snapshot,
)
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
        if self.run(harness_tables_exist(self.conn)):  # a store's own tables: see namespace
            self.run(self.conn.execute("TRUNCATE whatsapp_keys, whatsapp_auth"))
        self.states: dict[str, Any] = {}
        self.keys: dict[Key, Any] = {}
        self.creds: dict[str, dict[str, Any]] = {}
        # tenant isolation: who the last step operated on, and what every company looked like
        self.namespace = "" if is_ours(spec) else uuid.uuid4().hex[:6]
        self.on_tables = is_ours(spec)  # latched once the target's rows show up there
        self.actor: str | None = None
        self.action = "the initial loads"
        self.touched: frozenset[str] | None = frozenset()  # parts the step may have changed
        self.probe: dict[str, set[str]] = {}  # every (type, id) any company wrote
        self.rows: dict[str, dict[str, str]] | None = None  # each company's, after the last step
        self.family: list[str] = []
        # (company, channel, part) read as modelled since the company's own last operation
        self.verified: set[tuple[str, str, str]] = set()

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

    def acting(self, company: str, action: str, touches: Iterable[str] | None,
               data: dict[str, dict[str, Any]] | None = None) -> None:
        """Record the step's operation for the isolation invariant: who, what, which parts of a
        company it could change through a careless store (key types, "creds"; None: all of
        them; nothing for a read), and the ids it wrote."""
        self.actor, self.action = company, action
        self.touched = None if touches is None else frozenset(touches)
        self.verified = {v for v in self.verified if v[0] != company
                         or (self.touched is not None and v[2] not in self.touched)}
        for key_type, entries in (data or {}).items():
            self.probe.setdefault(key_type, set()).update(entries)

    # -- companies ------------------------------------------------------------------------------
    @initialize(target=companies, data=st.data())
    def make_companies(self, data: st.DataObject) -> Any:
        """A family of colliding ids, each company starting with the same key ids (values of
        its own), so an operation on one always has something of the others' to harm."""
        ids = data.draw(company_id_families(self.namespace), label="company ids")
        self.family = ids
        key_type, first = data.draw(key_type_values(max_ids=2, edge_ids=False),
                                    label="keys every company starts with")
        values = {key_id: data.draw(st.lists(key_entries(key_type).map(lambda e: e[1]),
                                             min_size=len(ids), max_size=len(ids),
                                             unique_by=digest))
                  for key_id in first}
        for n, company in enumerate(ids):
            entries = {key_id: values[key_id][n] for key_id in first}
            self.run(self.state(company).keys.set({key_type: entries}))
            self.keys.update({(company, key_type, k): v for k, v in entries.items()})
        self.probe[key_type] = set(first)
        self.touched = None  # the first check reads every part of every company
        return multiple(*ids)

    # -- writes ---------------------------------------------------------------------------------
    @rule(target=written, company=companies, batch=key_type_values(max_ids=3))
    def set_keys(self, company: str, batch: tuple[str, dict[str, Any]]) -> Any:
        key_type, entries = batch
        self.acting(company, f"keys.set of {len(entries)} {key_type} keys", {key_type},
                    data={key_type: entries})
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
        self.acting(company, "keys.set across types, with deletes", data, data=data)
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
        self.acting(company, f"keys.set deleting {key_ref(key_type, key_id)} ({falsy!r})",
                    {key_type})
        self.run(self.state(company).keys.set({key_type: {key_id: falsy}}))
        self.keys.pop(key, None)

    @rule(key=written, data=st.data())
    def overwrite_key(self, key: Key, data: st.DataObject) -> None:
        company, key_type, key_id = key
        value = data.draw(key_entries(key_type))[1]
        self.acting(company, f"keys.set overwriting {key_ref(key_type, key_id)}", {key_type})
        self.run(self.state(company).keys.set({key_type: {key_id: value}}))
        self.keys[key] = value

    @rule(company=companies, value=creds())
    def save_creds(self, company: str, value: dict[str, Any]) -> None:
        state = self.state(company)
        state.creds = value
        self.acting(company, "saveCreds", {CREDS})
        self.run(state.save_creds())
        self.creds[company] = value

    def family_head(self, data: st.DataObject) -> str:
        """A company for a destructive rule, half the time the family's first member (`a_b`,
        the prefix `a`, the 50-character id): the one a pattern or a cut would confuse with
        the others, while they all still hold something."""
        return data.draw(st.one_of(st.just(self.family[0]), st.sampled_from(self.family)),
                         label="company")

    @precondition(can_clear)
    @rule(data=st.data())
    def clear_keys(self, data: st.DataObject) -> None:
        company = self.family_head(data)
        self.acting(company, "keys.clear()", None)
        self.run(self.state(company).keys.clear())
        self.keys = {k: v for k, v in self.keys.items() if k[0] != company}

    @precondition(can_delete_company)
    @rule(data=st.data())
    def delete_company(self, data: st.DataObject) -> None:
        company = self.family_head(data)
        self.acting(company, "delete_company", None)
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
        self.acting(company, "keys.get", ())
        ids = [key[2]] + [o[2] for o in others] + missing
        got = self.run(self.state(company).keys.get(key_type, ids))
        expected = {i: self.keys[(company, key_type, i)] for i in ids
                    if (company, key_type, i) in self.keys}
        assert got == expected
        assert not any(is_js_falsy(v) for v in got.values())

    @rule(company=companies)
    def load_matches_model(self, company: str) -> None:
        self.acting(company, "load", ())
        state = self.run(self.target.load(company))
        if company in self.creds:
            assert state.creds == self.creds[company]
        else:  # fresh creds, shaped like initAuthCreds(), and not written by loading
            assert state.creds["registrationId"] < 16384 and "noiseKey" in state.creds
            self.settled()
            assert not self.uses_tables() or self.run(self.conn.fetchval(
                "SELECT count(*) FROM whatsapp_auth WHERE company_id = $1", company)) == 0

    # -- invariants: the tables hold exactly what the model holds --------------------------------
    @invariant()
    def tables_match_model(self) -> None:
        self.settled()
        if not self.uses_tables():
            return  # a store with its own schema: judged through its read API
        rows = self.run(self.conn.fetch(
            "SELECT company_id, key_type, key_id FROM whatsapp_keys"))
        assert {tuple(r) for r in rows} == set(self.keys)
        rows = self.run(self.conn.fetch("SELECT company_id FROM whatsapp_auth"))
        assert {r[0] for r in rows} == set(self.creds)

    @invariant()
    def companies_match_model(self) -> None:
        if callable(getattr(self.target, "companies", None)):
            expected = sorted({k[0] for k in self.keys} | set(self.creds))
            got = self.run(self.target.companies())
            assert [c for c in got if c.startswith(self.namespace)] == expected

    # -- invariant: no step changes a company it did not operate on ------------------------------
    def uses_tables(self) -> bool:
        """Whether the target keeps its state in the harness's tables: ours always; another
        store once its rows show up there."""
        if not self.on_tables and self.family:
            self.on_tables = self.run(on_harness_tables(self.conn, self.family))
        return self.on_tables

    def expected_view(self, company: str, *, snapshot: bool) -> dict[str, str]:
        """The model's company as digests: creds if saved, keys (for the read API the probed
        ids, which is all it can be asked for; a snapshot holds them all)."""
        view = {key_ref(t, i): digest(v) for (c, t, i), v in self.keys.items()
                if c == company and (snapshot or i in self.probe.get(t, ()))}
        if company in self.creds:
            view[CREDS] = digest(self.creds[company])
        return view

    def observed_view(self, company: str) -> View:
        """The company as a reader sees it: keys.get of the probed ids of the types the step
        could change, and its creds when the step could change them and it has some -- those
        through a new load, else through the company's running state (a new load of a company
        without creds makes fresh ones, which costs more than the whole step; the rows and the
        isolation property cover creds appearing where there were none) -- and its snapshot()."""
        view: View = {}
        if self.touched is None or self.touched:
            types = self.probe if self.touched is None else {
                t: ids for t, ids in self.probe.items() if t in self.touched}
            fresh_load = company in self.creds and (self.touched is None
                                                     or CREDS in self.touched)
            view[API] = self.run(read_api(self.target, company, types, state=None if fresh_load
                                          else self.state(company)))
        snapshot = self.run(read_snapshot(self.target, company))
        if snapshot is not None:
            view[SNAPSHOT] = snapshot
        return view

    def parts_read(self, channel: str) -> set[str] | None:
        """Which parts (key types, "creds") a channel read this step; None: all."""
        if channel != API or self.touched is None:
            return None
        return set(self.touched)

    def expected_api(self, company: str) -> dict[str, str]:
        """The model as the read API was asked this step (creds only through a new load)."""
        view = self.expected_view(company, snapshot=False)
        if company in self.creds and not (self.touched is None or CREDS in self.touched):
            view.pop(CREDS)
        return view

    @invariant()
    def no_company_changed_by_another(self) -> None:
        """After each step every company is read from outside (the parts the step could
        change) and must hold what the model says. The company operated on is read too, so
        every part is known good right after its owner's last operation: a part of another
        company that held it when last read and no longer does was changed by this step,
        `cross-tenant`. Rows straight from PostgreSQL (stores on the harness's tables): only
        the actor's may change."""
        if not self.family:
            return
        self.settled()
        for company in self.family:
            for channel, seen in self.observed_view(company).items():
                expected = (self.expected_view(company, snapshot=True) if channel == SNAPSHOT
                            else self.expected_api(company))
                wanted = self.parts_read(channel)
                by_part: dict[str, list[str]] = {}
                for entry in expected.keys() | seen.keys():
                    part = entry.split("/", 1)[0]
                    if wanted is None or part in wanted:
                        by_part.setdefault(part, []).append(entry)
                for part in (wanted or set()) | by_part.keys():
                    entries = by_part.get(part, [])
                    found = changes({channel: {e: expected[e] for e in entries if e in expected}},
                                    {channel: {e: seen[e] for e in entries if e in seen}})
                    if (found and company != self.actor
                            and (company, channel, part) in self.verified):
                        raise AssertionError(cross_tenant(self.action, str(self.actor), company,
                                                          found))
                    assert not found, (
                        f"{self.action} on company {self.actor!r}: company {company!r} reads "
                        "differently from what it was given:\n  " + "\n  ".join(found))
                    self.verified.add((company, channel, part))
        if self.uses_tables():
            rows = self.run(read_rows(self.conn, self.family))
            for company in self.family if self.rows is not None else ():
                found = changes({ROWS: self.rows[company]}, {ROWS: rows[company]})
                if found and company != self.actor:
                    raise AssertionError(cross_tenant(self.action, str(self.actor), company,
                                                      found))
            self.rows = rows

    def teardown(self) -> None:
        try:
            self.run(close_target(self.target, self.spec))
        finally:
            self.run(self.conn.close())
            self.loop.close()


def test_store_behaves_like_the_model(target_spec: TargetSpec, pg_dsn: str,
                                      tmp_path: Path) -> None:
    base = settings()  # the active profile (dev / ci / thorough) sets max_examples
    # Every example opens the target anew (a pool, a Node.js process): shrinking a failure of a
    # store not shipped here can take longer than the test's timeout, which would then replace
    # the finding (`cross-tenant`, a lost write) with "Timeout". Such a store gets the failing
    # sequence as found; ours, cheap to open, get it shrunk.
    phases = [p for p in base.phases if p is not Phase.shrink or is_ours(target_spec)]
    run_state_machine_as_test(
        lambda: StoreMachine(target_spec, pg_dsn, tmp_path),
        settings=settings(base, max_examples=max(10, base.max_examples // 4),
                          stateful_step_count=25, phases=phases))


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
