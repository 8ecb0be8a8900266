"""Fidelity through real PostgreSQL: what goes into the target comes back byte for byte.

Everything goes through Baileys' surface (`load`, `state.creds` + `save_creds`, `keys.get/set`).
A value is read back twice: by a new `load` on the instance that wrote it, and by a second
instance of the target with an empty cache_dir, which can only have it from PostgreSQL. "Nothing
written" is checked the same way, and in the harness's tables with a raw connection when they
exist.

Any store is held to what it does: a value round-trips exactly, or is refused (in the store's
own words: harness.authstate.foreign_errors) with nothing written. The stores shipped here
(reference, resilient) are also held to our own limits and wording: they refuse what JSONB
cannot hold and company ids outside the rule, with a bounded message and a hint.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.property_store import LoopStore
from fixtures.strategies import (
    creds,
    invalid_company_ids,
    key_type_values,
    large_app_state_sync_version_values,
    non_str_company_ids,
    unstorable_values,
)
from fixtures.tenants import CROSS_TENANT, harness_tables_exist
from harness.authstate import AuthStateError
from harness.authstate import key_types as kt
from harness.authstate.foreign_errors import error_kind, foreign_sqlstate
from harness.authstate.key_types import is_js_falsy

SHARED_DB = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
MAX_ERROR_CHARS = 400


def _company() -> str:
    return "c" + uuid.uuid4().hex[:20]


def _set_keys(ls: LoopStore, company: str, data: dict[str, dict[str, Any]]) -> None:
    state = ls.run(ls.store.load(company))
    ls.run(state.keys.set(data))


def _read_keys(ls: LoopStore, company: str, key_type: str, ids: list[str]) -> list[dict]:
    """What a new load on the writing instance returns, then what a fresh instance returns."""
    got = [ls.run(ls.run(ls.store.load(company)).keys.get(key_type, ids))]
    ls.settle()
    got.append(ls.run(ls.run(ls.reader.load(company)).keys.get(key_type, ids)))
    return got


def _rows(ls: LoopStore, company: str) -> tuple[int, int]:
    """(key rows, creds rows) of the company in the tables."""
    ls.settle()
    return (ls.sql("SELECT count(*) FROM whatsapp_keys WHERE company_id = $1", company),
            ls.sql("SELECT count(*) FROM whatsapp_auth WHERE company_id = $1", company))


def _counts(ls: LoopStore) -> tuple[int, int]:
    return ls.sql("SELECT count(*) FROM whatsapp_keys"), ls.sql("SELECT count(*) FROM "
                                                                "whatsapp_auth")


def _has_tables(ls: LoopStore) -> bool:
    """The harness's tables exist (a store with its own schema may never create them): their
    rows are then checked too, beside what the target reads back."""
    return ls.run(harness_tables_exist(ls.conn))


def _check_refusal(ls: LoopStore, err: BaseException) -> None:
    """The stores shipped here never echo unbounded input and say what to do; another store's
    refusal is judged by what it left behind, not by its words."""
    if not ls.ours:
        return
    assert len(str(err)) < MAX_ERROR_CHARS, "the error must not echo unbounded input"
    if isinstance(err, AuthStateError):
        assert err.hint


@SHARED_DB
@given(creds=creds())
def test_creds_round_trip(loop_store, creds) -> None:
    company = _company()
    state = loop_store.run(loop_store.store.load(company))
    state.creds = creds
    loop_store.run(state.save_creds())
    assert loop_store.run(loop_store.store.load(company)).creds == creds
    loop_store.settle()
    assert loop_store.run(loop_store.reader.load(company)).creds == creds


@SHARED_DB
@given(batch=key_type_values(max_ids=6))
def test_every_key_type_round_trips(loop_store, batch) -> None:
    key_type, entries = batch
    company = _company()
    _set_keys(loop_store, company, {key_type: entries})
    for got in _read_keys(loop_store, company, key_type, list(entries)):
        assert got == entries
        assert not any(is_js_falsy(v) for v in got.values())


@SHARED_DB
@given(batches=st.lists(key_type_values(max_ids=4), min_size=2, max_size=5))
def test_one_set_across_types_round_trips(loop_store, batches) -> None:
    company = _company()
    data: dict[str, dict] = {}
    for key_type, entries in batches:
        data.setdefault(key_type, {}).update(entries)
    _set_keys(loop_store, company, data)
    for key_type, entries in data.items():
        assert _read_keys(loop_store, company, key_type, list(entries)) == [entries, entries]


@settings(max_examples=5, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                  HealthCheck.too_slow,
                                                  HealthCheck.data_too_large])
@given(value=large_app_state_sync_version_values())
def test_large_app_state_versions_round_trip(loop_store, value) -> None:
    company = _company()
    _set_keys(loop_store, company, {kt.APP_STATE_SYNC_VERSION: {"regular_high": value}})
    got = _read_keys(loop_store, company, kt.APP_STATE_SYNC_VERSION, ["regular_high"])
    assert got == [{"regular_high": value}] * 2


def _refused(call: Callable[[], Any]) -> BaseException | None:
    """Run `call`: None when it completed, the exception when it was a refusal in any store's
    words (harness.authstate.foreign_errors: a TypeError or ValueError, a database error of
    SQLSTATE class 22 or 23 let through); anything else -- an outage, a bug -- fails the test."""
    try:
        call()
    except Exception as exc:
        code = foreign_sqlstate(exc)
        assert error_kind(exc) == "refusal", (
            f"raised {type(exc).__name__}: {str(exc)[:200]}"
            + (f" (SQLSTATE {code})" if code else "")
            + ": neither a refusal (TypeError, ValueError, SQLSTATE class 22/23) nor a success")
        return exc
    return None


@SHARED_DB
@given(bad=unstorable_values(), good=key_type_values(max_ids=3))
def test_unstorable_value_round_trips_or_is_refused_with_nothing_written(loop_store, bad,
                                                                        good) -> None:
    """A NUL or lone surrogate hidden in a value. PostgreSQL JSONB cannot hold it, so the stores
    shipped here refuse it up front; another store may keep it exactly instead (JSON text escapes
    it). What no store may do is keep something else, or part of the batch."""
    company = _company()
    key_type, entries = good
    data: dict[str, dict[str, Any]] = {key_type: dict(entries)}
    data.setdefault(kt.SESSION, {})["bad-one"] = bad
    state = loop_store.run(loop_store.store.load(company))
    keys_refused = _refused(lambda: loop_store.run(state.keys.set(data)))
    state.creds = {"me": bad}
    creds_refused = _refused(lambda: loop_store.run(state.save_creds()))
    if loop_store.ours:
        assert keys_refused is not None and creds_refused is not None, \
            "the stores shipped here refuse what JSONB cannot hold"
    for err in (keys_refused, creds_refused):
        if err is not None:
            _check_refusal(loop_store, err)
    for key_type_, written in data.items():  # nothing of the batch, or all of it, exactly
        expected = {} if keys_refused is not None else written
        assert _read_keys(loop_store, company, key_type_, list(written)) == [expected] * 2
    loads = [loop_store.run(loop_store.store.load(company)).creds,
             loop_store.run(loop_store.reader.load(company)).creds]
    for loaded in loads:
        if creds_refused is not None:  # fresh creds, shaped like initAuthCreds()
            assert "noiseKey" in loaded and "me" not in loaded, "the refused creds were kept"
        else:
            assert loaded == {"me": bad}
    if keys_refused is not None and creds_refused is not None and _has_tables(loop_store):
        assert _rows(loop_store, company) == (0, 0)  # and not in the tables either


def _neighbours(bad: object) -> list[str]:
    """Valid ids a careless store might turn `bad` into: stripped to the alphabet and cut to 50
    characters, from Python's str() and JavaScript's String() of it."""
    forms = {str(bad)}
    if bad is None:
        forms.add("null")
    elif isinstance(bad, bytes):
        forms.add(bad.decode("utf-8", "replace"))
    elif isinstance(bad, list):
        forms.add(",".join(map(str, bad)))
    elif isinstance(bad, dict):
        forms.add("[object Object]")
    valid = (re.sub(r"[^A-Za-z0-9_-]", "", form)[:50] for form in forms)
    return sorted({v for v in valid if v and v != bad})


def _kept_apart(ls: LoopStore, bad: object, state: Any) -> None:
    """A store that took `bad` as a company id must keep it its own tenant: what is written
    under it lands under it exactly and never under a neighbouring valid id."""
    mine, theirs = {"who": uuid.uuid4().hex}, {"who": uuid.uuid4().hex}
    for neighbour in _neighbours(bad):
        _set_keys(ls, neighbour, {kt.LID_MAPPING: {"probe": theirs["who"]}})
    if _refused(lambda: ls.run(state.keys.set({kt.LID_MAPPING: {"probe": mine["who"]}}))):
        written = {}
    else:
        written = {"probe": mine["who"]}
    assert ls.run(ls.run(ls.store.load(bad)).keys.get(kt.LID_MAPPING, ["probe"])) == written
    for neighbour in _neighbours(bad):
        got = ls.run(ls.run(ls.store.load(neighbour)).keys.get(kt.LID_MAPPING, ["probe"]))
        assert got == {"probe": theirs["who"]}, (
            f"{CROSS_TENANT}: keys.set on company {bad!r}, which the target accepted, changed "
            f"company {neighbour!r}")


@SHARED_DB
@given(bad=st.one_of(invalid_company_ids(), non_str_company_ids()))
def test_invalid_company_ids_are_refused_or_kept_apart(loop_store, bad) -> None:
    """`load` is where Baileys' surface takes the company id. The stores shipped here refuse
    one outside `[A-Za-z0-9_-]{1,50}` saying so (a target that accepted it would hand out a
    state whose every save lands under that id). Another store may take any id, as long as
    loading writes nothing and the id stays its own tenant (`acme\\n` is not `acme`)."""
    tables = _has_tables(loop_store)
    loop_store.settle()
    before = _counts(loop_store) if tables else None
    state: list[Any] = []
    refused = _refused(lambda: state.append(loop_store.run(loop_store.store.load(bad))))
    if loop_store.ours:
        assert refused is not None, "the stores shipped here refuse an id outside the rule"
        assert "A-Z" in str(refused) or "characters" in str(refused)
    if refused is not None:
        _check_refusal(loop_store, refused)
    loop_store.settle()
    if tables:
        assert _counts(loop_store) == before, "loading must write nothing"
        assert loop_store.sql("SELECT to_regclass('whatsapp_keys') IS NOT NULL")
    if refused is None:
        _kept_apart(loop_store, bad, state[0])
