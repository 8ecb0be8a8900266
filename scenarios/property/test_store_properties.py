"""Fidelity through real PostgreSQL: what goes into the target comes back byte for byte.

Everything goes through Baileys' surface (`load`, `state.creds` + `save_creds`, `keys.get/set`).
A value is read back twice: by a new `load` on the instance that wrote it, and by a second
instance of the target with an empty cache_dir, which can only have it from PostgreSQL. "Nothing
written" is checked in the tables themselves with a raw connection.

Each example uses its own company id, so examples sharing the test's database stay independent
(hence the suppressed function-scoped-fixture health check: the fixture is deliberately shared).
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
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
from harness.authstate import AuthStateError
from harness.authstate import key_types as kt
from harness.authstate.key_types import is_js_falsy

SHARED_DB = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
REFUSED = (ValueError, TypeError)  # the harness's own refusals are ValueErrors with a hint
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


def _check_refusal(err: BaseException) -> None:
    """A refusal never echoes unbounded input; the harness's own stores also say what to do."""
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


@SHARED_DB
@given(bad=unstorable_values(), good=key_type_values(max_ids=3))
def test_unstorable_value_is_refused_and_nothing_is_written(loop_store, bad, good) -> None:
    company = _company()
    key_type, entries = good
    state = loop_store.run(loop_store.store.load(company))
    with pytest.raises(REFUSED) as err:
        loop_store.run(state.keys.set({key_type: entries, kt.SESSION: {"bad-one": bad}}))
    _check_refusal(err.value)
    state.creds = {"me": bad}
    with pytest.raises(REFUSED) as err:
        loop_store.run(state.save_creds())
    _check_refusal(err.value)
    # Nothing written: not in the target's memory or files (a new load) ...
    again = loop_store.run(loop_store.store.load(company))
    assert loop_store.run(again.keys.get(key_type, list(entries))) == {}
    assert loop_store.run(again.keys.get(kt.SESSION, ["bad-one"])) == {}
    assert "noiseKey" in again.creds, "the refused creds must not be served"
    # ... and not in the tables.
    assert _rows(loop_store, company) == (0, 0)


@SHARED_DB
@given(bad=st.one_of(invalid_company_ids(), non_str_company_ids()))
def test_invalid_company_ids_are_rejected_and_nothing_is_written(loop_store, bad) -> None:
    """`load` is where Baileys' surface takes the company id: it must refuse a bad one (a
    target that accepted it would hand out a state whose every save lands under that id)."""
    loop_store.settle()
    before = loop_store.sql("SELECT count(*) FROM whatsapp_keys")
    with pytest.raises(REFUSED) as err:
        loop_store.run(loop_store.store.load(bad))
    _check_refusal(err.value)
    if isinstance(err.value, AuthStateError):
        assert "A-Z" in str(err.value) or "characters" in str(err.value)
    loop_store.settle()
    assert loop_store.sql("SELECT count(*) FROM whatsapp_keys") == before
    assert loop_store.sql("SELECT count(*) FROM whatsapp_auth") == 0
    assert loop_store.sql("SELECT to_regclass('whatsapp_keys') IS NOT NULL")
