"""Chaos values: every kind digests alike before the store and after a trip through PostgreSQL,
every write is unique, and fresh creds are told from paired ones."""

from __future__ import annotations

import base64
from typing import Any

import asyncpg
import pytest

from harness.authstate import PostgresAuthStore, codec
from harness.authstate.creds import init_auth_creds
from harness.chaos.values import ValueFactory, decoded, digest, is_fresh

FACTORY = ValueFactory("t", seed=7)
CONTACTS = ["5511999000001:0@s.whatsapp.net", "5511999000002:3@s.whatsapp.net"]


def kinds() -> dict[str, Any]:
    return {
        "session": FACTORY.session(),
        "session-large": FACTORY.session(8000),
        "pre-key": FACTORY.pre_key(),
        "sender-key": FACTORY.sender_key(),
        "sender-key-memory": FACTORY.sender_key_memory(CONTACTS),
        "identity-key": FACTORY.identity_key(),
    }


KEY_TYPE = {"session-large": "session"}


@pytest.mark.parametrize("kind", list(kinds()))
async def test_digest_is_the_same_after_a_round_trip_through_postgresql(
        kind: str, store: PostgresAuthStore, db: asyncpg.Connection) -> None:
    value = kinds()[kind]
    key_type = KEY_TYPE.get(kind, kind)
    state = await store.load("acme")
    await state.keys.set({key_type: {"k1": value}})
    text = await db.fetchval("SELECT value::text FROM whatsapp_keys WHERE company_id = 'acme' "
                             "AND key_type = $1 AND key_id = 'k1'", key_type)
    assert digest(codec.loads(text)) == digest(value)
    got = await state.keys.get(key_type, ["k1"])
    assert digest(got["k1"]) == digest(value)


async def test_paired_creds_digest_the_same_after_a_round_trip(
        store: PostgresAuthStore, db: asyncpg.Connection) -> None:
    state = await store.load("acme")
    state.creds.clear()
    state.creds.update(FACTORY.paired_creds("5511999000000"))
    await state.save_creds()
    text = await db.fetchval("SELECT creds::text FROM whatsapp_auth WHERE company_id = 'acme'")
    assert digest(codec.loads(text)) == digest(state.creds)
    reloaded = await store.load("acme")
    assert digest(reloaded.creds) == digest(state.creds)


def test_sizes_are_baileys_like() -> None:
    small, large = FACTORY.session(900), FACTORY.session(8000)
    assert 800 < len(codec.dumps(small)) < 1500
    assert 6000 < len(codec.dumps(large)) < 11000
    pre_key = FACTORY.pre_key()
    assert set(pre_key) == {"public", "private"}
    assert len(pre_key["public"]) == len(pre_key["private"]) == 32
    assert len(FACTORY.identity_key()) == 33
    assert isinstance(FACTORY.sender_key(), bytes)


def test_every_value_is_unique() -> None:
    factory = ValueFactory("u")
    made = [digest(factory.session(900)) for _ in range(200)]
    made += [digest(factory.pre_key()) for _ in range(200)]
    made += [digest(factory.sender_key()) for _ in range(200)]
    made += [digest(factory.sender_key_memory(CONTACTS)) for _ in range(200)]
    made += [digest(factory.identity_key()) for _ in range(200)]
    assert len(set(made)) == len(made)


def test_a_creds_update_changes_the_digest() -> None:
    creds = FACTORY.paired_creds("5511999000000")
    before = digest(creds)
    FACTORY.touch_creds(creds)
    assert digest(creds) != before


def test_digest_ignores_key_order_and_bytes_form() -> None:
    assert digest({"a": 1, "b": b"\x01"}) == digest({"b": b"\x01", "a": 1})
    stored = '{"b": {"type": "Buffer", "data": "AQ=="}}'
    assert digest({"b": b"\x01"}) == digest(codec.loads(stored))
    assert digest({"a": 1}) != digest({"a": 2})


def test_fresh_creds_are_told_from_paired_ones() -> None:
    assert is_fresh(init_auth_creds())
    assert not is_fresh(FACTORY.paired_creds("5511999000000"))
    assert is_fresh(None)


def test_bytes_and_their_undecoded_forms_digest_differently() -> None:
    """The classic cache bug: bytes handed back as a {"type": "Buffer"} object (or base64
    text, or a list of numbers) is a different value for Baileys, so for the checker too."""
    raw = bytes(range(1, 33))
    forms = {
        "bytes": raw,
        "Buffer-object": {"type": "Buffer", "data": base64.b64encode(raw).decode()},
        "Buffer-object-array": {"type": "Buffer", "data": list(raw)},
        "numbered-object": {str(i): b for i, b in enumerate(raw)},
        "base64-string": base64.b64encode(raw).decode(),
        "number-array": list(raw),
    }
    digests = {name: digest(value) for name, value in forms.items()}
    assert len(set(digests.values())) == len(forms), digests
    for name, value in forms.items():
        if name == "bytes":
            continue
        loose, found = decoded(value)
        assert digest(loose) == digests["bytes"], name
        assert found == {"Buffer-object" if name.startswith("Buffer") else name}, name
    nested = {"public": forms["Buffer-object"], "private": raw}
    loose, found = decoded(nested)
    assert digest(loose) == digest({"public": raw, "private": raw}) and found == {
        "Buffer-object"}
