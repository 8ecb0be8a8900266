"""Tenant isolation: an operation on one company never changes what another company holds.

Company ids come in families a careless store confuses (fixtures.strategies.company_id_families):
`a_b`/`axb` (a LIKE wildcard), `a`/`a-1`/`a_1` (prefixes), `A`/`a` (case folding), a
50-character id and its prefixes (truncation). Every company of the family gets the same key ids
with values of its own, and creds of its own; then one operation runs on one of them -- a key
write, a delete, a creds save, a load, and `keys.clear()` / `delete_company()` where the target
has them -- and every *other* company is read again from outside (fixtures.tenants: the target's
read API, the harness's tables for stores on them, `snapshot()` when the target has it). Any
difference is anomaly `cross-tenant`. The stateful machine (test_store_stateful.py) checks the
same after every step of random operation sequences.

Examples share the test's database, so each compares a company with itself before and after the
operation: what an earlier example left under the same ids does not matter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from fixtures.property_store import LoopStore
from fixtures.strategies import company_id_families, fresh_creds, key_ids, key_values
from fixtures.tenants import changes, cross_tenant, digest, observe, on_harness_tables
from harness.authstate import key_types as kt
from harness.authstate.creds import init_auth_creds

SLOTS = 5  # the largest family company_id_families() draws
OPS = ("set", "delete", "save_creds", "load", "clear", "delete_company")


@dataclass(frozen=True)
class Seed:
    """What each company of the family holds (slot i: the family's i-th company), and what the
    operation on the chosen one writes."""

    key_type: str
    ids: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]  # values[slot][i] is the slot's value of ids[i]
    creds: tuple[dict[str, Any], ...]
    new_id: str
    new_values: tuple[Any, ...]  # the operation's values for ids..., new_id
    new_creds: dict[str, Any]
    falsy: Any

    def __repr__(self) -> str:  # values as digests: a failing example stays readable
        values = [[digest(v) for v in slot] for slot in self.values]
        return (f"Seed({self.key_type!r}, ids={self.ids!r}, new_id={self.new_id!r}, "
                f"value digests by company={values}, falsy={self.falsy!r})")

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # how Hypothesis prints it
        printer.text(repr(self))


@st.composite
def seeds(draw: st.DrawFn) -> Seed:
    key_type = draw(st.sampled_from(kt.KEY_TYPES))
    ids = draw(st.lists(key_ids(key_type), min_size=1, max_size=3, unique=True))
    new_id = draw(key_ids(key_type).filter(lambda i: i not in ids))
    # the same id holds a different value in every company, so a read served from another
    # company's row is seen, not only a missing one
    per_id = [draw(st.lists(key_values(key_type), min_size=SLOTS + 1, max_size=SLOTS + 1,
                            unique_by=digest)) for _ in ids]
    creds = draw(st.lists(fresh_creds(), min_size=SLOTS + 1, max_size=SLOTS + 1,
                          unique_by=digest))
    return Seed(key_type, tuple(ids),
                tuple(tuple(v[slot] for v in per_id) for slot in range(SLOTS)),
                tuple(creds[:SLOTS]), new_id,
                (*(v[SLOTS] for v in per_id), draw(key_values(key_type))), creds[SLOTS],
                draw(st.sampled_from([None, False, 0, ""])))


def _pre_key(slot: int) -> dict[str, bytes]:
    return {"public": bytes([5, slot]) + bytes(31), "private": bytes([slot + 1]) * 32}


CANONICAL = Seed(kt.PRE_KEY, ("1", "2"), tuple((_pre_key(s), _pre_key(s + 10))
                                               for s in range(SLOTS)),
                 tuple(init_auth_creds() for _ in range(SLOTS)), "3",
                 (_pre_key(20), _pre_key(21), _pre_key(22)), init_auth_creds(), None)
MAX_ID = "M" + "a1_-" * 12 + "z"  # 50 characters


def _operate(ls: LoopStore, op: str, company: str, seed: Seed) -> str:
    """Run `op` on `company`; return how the failure message names it."""
    state = ls.run(ls.store.load(company))
    if op == "set":
        data = dict(zip((*seed.ids, seed.new_id), seed.new_values, strict=True))
        ls.run(state.keys.set({seed.key_type: data}))
        return f"keys.set of {len(data)} {seed.key_type} keys"
    if op == "delete":
        ls.run(state.keys.set({seed.key_type: dict.fromkeys(seed.ids, seed.falsy)}))
        return f"keys.set deleting {len(seed.ids)} {seed.key_type} keys (value {seed.falsy!r})"
    if op == "save_creds":
        state.creds = seed.new_creds
        ls.run(state.save_creds())
        return "saveCreds"
    if op == "load":
        ls.run(state.keys.get(seed.key_type, list(seed.ids)))
        return "load and keys.get"
    if op == "clear":
        clear = getattr(state.keys, "clear", None)
        assume(callable(clear))  # optional hook: only where the target has it
        ls.run(clear())
        return "keys.clear()"
    assert op == "delete_company", op
    delete = getattr(ls.store, "delete_company", None)
    assume(callable(delete))  # optional hook
    ls.run(delete(company))
    return "delete_company"


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(family=company_id_families(), actor=st.integers(0, SLOTS - 1),
       op=st.sampled_from(OPS), seed=seeds())
@example(family=["a_b", "axb", "a-b"], actor=0, op="delete_company", seed=CANONICAL)
@example(family=["a_b", "axb"], actor=0, op="clear", seed=CANONICAL)
@example(family=["a", "a-1", "a_1", "a1"], actor=0, op="delete_company", seed=CANONICAL)
@example(family=["A", "a"], actor=1, op="delete_company", seed=CANONICAL)
@example(family=["A", "a"], actor=0, op="set", seed=CANONICAL)
@example(family=[MAX_ID, MAX_ID[:49], MAX_ID[:10]], actor=0, op="delete_company",
         seed=CANONICAL)
def test_an_operation_on_one_company_changes_no_other(loop_store: LoopStore, family: list[str],
                                                     actor: int, op: str, seed: Seed) -> None:
    ls = loop_store
    company = family[actor % len(family)]
    others = [c for c in family if c != company]
    for slot, member in enumerate(family):
        state = ls.run(ls.store.load(member))
        ls.run(state.keys.set({seed.key_type: dict(zip(seed.ids, seed.values[slot],
                                                       strict=True))}))
        state.creds = seed.creds[slot]
        ls.run(state.save_creds())
    ls.settle()
    conn = ls.conn if ls.ours or ls.run(on_harness_tables(ls.conn, family)) else None
    probe = {seed.key_type: [*seed.ids, seed.new_id]}
    before = ls.run(observe(ls.store, others, probe, conn))
    action = _operate(ls, op, company, seed)
    ls.settle()
    after = ls.run(observe(ls.store, others, probe, conn))
    for other in others:
        found = changes(before[other], after[other])
        assert not found, cross_tenant(action, company, other, found)
