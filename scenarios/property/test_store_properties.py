"""Fidelity through real PostgreSQL: what goes into the store comes back byte for byte.

Each example uses its own company id, so examples sharing the test's database stay independent
(hence the suppressed function-scoped-fixture health check: the fixture is deliberately shared).
"""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.strategies import (
    creds,
    invalid_company_ids,
    key_type_values,
    large_app_state_sync_version_values,
    non_str_company_ids,
    unstorable_values,
)
from harness.authstate import InvalidCompanyId, UnsupportedValue
from harness.authstate import key_types as kt
from harness.authstate.key_types import is_js_falsy

SHARED_DB = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def _company() -> str:
    return "c" + uuid.uuid4().hex[:20]


@SHARED_DB
@given(creds=creds())
def test_creds_round_trip(loop_store, creds) -> None:
    company = _company()
    loop_store.run(loop_store.store.write_creds(company, creds))
    assert loop_store.run(loop_store.store.read_creds(company)) == creds
    state = loop_store.run(loop_store.store.load(company))
    assert state.creds == creds


@SHARED_DB
@given(batch=key_type_values(max_ids=6))
def test_every_key_type_round_trips(loop_store, batch) -> None:
    key_type, entries = batch
    company = _company()
    loop_store.run(loop_store.store.set_keys(company, {key_type: entries}))
    got = loop_store.run(loop_store.store.get_keys(company, key_type, list(entries)))
    assert got == entries
    assert not any(is_js_falsy(v) for v in got.values())


@SHARED_DB
@given(batches=st.lists(key_type_values(max_ids=4), min_size=2, max_size=5))
def test_one_set_across_types_round_trips(loop_store, batches) -> None:
    company = _company()
    data: dict[str, dict] = {}
    for key_type, entries in batches:
        data.setdefault(key_type, {}).update(entries)
    loop_store.run(loop_store.store.set_keys(company, data))
    for key_type, entries in data.items():
        got = loop_store.run(loop_store.store.get_keys(company, key_type, list(entries)))
        assert got == entries


@settings(max_examples=5, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                  HealthCheck.too_slow,
                                                  HealthCheck.data_too_large])
@given(value=large_app_state_sync_version_values())
def test_large_app_state_versions_round_trip(loop_store, value) -> None:
    company = _company()
    loop_store.run(loop_store.store.set_keys(
        company, {kt.APP_STATE_SYNC_VERSION: {"regular_high": value}}))
    got = loop_store.run(loop_store.store.get_keys(company, kt.APP_STATE_SYNC_VERSION,
                                                   ["regular_high"]))
    assert got == {"regular_high": value}


@SHARED_DB
@given(bad=unstorable_values(), good=key_type_values(max_ids=3))
def test_unstorable_value_is_refused_and_nothing_is_written(loop_store, bad, good) -> None:
    company = _company()
    key_type, entries = good
    with pytest.raises(UnsupportedValue) as err:
        loop_store.run(loop_store.store.set_keys(
            company, {key_type: entries, kt.SESSION: {"bad-one": bad}}))
    assert err.value.hint
    with pytest.raises(UnsupportedValue):
        loop_store.run(loop_store.store.write_creds(company, {"me": bad}))
    assert loop_store.sql("SELECT count(*) FROM whatsapp_keys WHERE company_id = $1",
                          company) == 0
    assert loop_store.sql("SELECT count(*) FROM whatsapp_auth WHERE company_id = $1",
                          company) == 0


@SHARED_DB
@given(bad=st.one_of(invalid_company_ids(), non_str_company_ids()),
       batch=key_type_values(max_ids=2))
def test_invalid_company_ids_are_rejected_and_nothing_is_written(loop_store, bad, batch) -> None:
    key_type, entries = batch
    store = loop_store.store
    before = loop_store.sql("SELECT count(*) FROM whatsapp_keys")
    for call in (lambda: store.set_keys(bad, {key_type: entries}),
                 lambda: store.write_creds(bad, {"registered": True}),
                 lambda: store.load(bad),
                 lambda: store.get_keys(bad, key_type, list(entries)),
                 lambda: store.clear_keys(bad),
                 lambda: store.delete_company(bad)):
        with pytest.raises(InvalidCompanyId) as err:
            loop_store.run(call())
        assert "A-Z" in str(err.value) or "characters" in str(err.value)
        assert len(str(err.value)) < 400, "the error must not echo unbounded input"
    assert loop_store.sql("SELECT count(*) FROM whatsapp_keys") == before
    assert loop_store.sql("SELECT count(*) FROM whatsapp_auth") == 0
    assert loop_store.sql("SELECT to_regclass('whatsapp_keys') IS NOT NULL")
