"""Key material and passwords never survive `scrub`, while ordinary text stays readable."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fixtures import strategies as s
from harness.authstate import codec
from harness.authstate.key_types import KEY_TYPES
from harness.report.redact import scrub, scrub_tree

SECRET_MIN = 15  # bytes: shorter values (ids, flags) are not key material


def _secrets(value: Any) -> list[bytes]:
    """Every bytes value of at least SECRET_MIN bytes inside a Baileys value."""
    if isinstance(value, bytes | bytearray):
        return [bytes(value)] if len(value) >= SECRET_MIN else []
    if isinstance(value, dict):
        return [b for v in value.values() for b in _secrets(v)]
    if isinstance(value, list | tuple):
        return [b for v in value for b in _secrets(v)]
    return []


def _renderings(secret: bytes) -> list[str]:
    return [base64.b64encode(secret).decode(), secret.hex(), repr(secret)[2:-1]]


def _assert_no_secret(text: str, value: Any) -> None:
    for secret in _secrets(value):
        for rendering in _renderings(secret):
            assert rendering not in text


@given(s.creds())
def test_creds_in_every_printed_form_are_scrubbed(creds: dict[str, Any]) -> None:
    for text in (codec.dumps(creds), repr(creds), str(codec.encode(creds))):
        _assert_no_secret(scrub(f"AssertionError: stored {text} differs"), creds)


@given(st.sampled_from(KEY_TYPES).flatmap(s.key_type_values))
def test_key_values_of_every_type_are_scrubbed(batch: tuple[str, dict[str, Any]]) -> None:
    key_type, keys = batch
    for text in (codec.dumps({key_type: keys}), repr(keys)):
        _assert_no_secret(scrub(f"Falsifying example: keys={text}"), keys)


def test_buffer_array_form_and_hypothesis_blob_are_scrubbed() -> None:
    text = ('{"type": "Buffer", "data": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]} '
            '@reproduce_failure("6.100.0", b"AXicY2BgZGBkAAAAEAAD")')
    out = scrub(text)
    assert "1, 2, 3" not in out and "AXicY2BgZGBkAAAAEAAD" not in out


def test_passwords_are_scrubbed_from_urls_and_keyword_dsns() -> None:
    out = scrub("connect postgresql://app:s3cr%40t@db:5432/x failed; "
                "dsn='host=db password=hunter2 user=app'")
    assert "s3cr" not in out and "hunter2" not in out
    assert "postgresql://app:***@db:5432/x" in out and "password=***" in out


def test_ordinary_output_is_kept() -> None:
    text = ("scenarios/property/test_store_properties.py::test_round_trip[pre-key] FAILED\n"
            "/work/main/harness/report/redact.py:12 in reports/20261122T130501Z/report.json\n"
            "ProvisionedToxiproxy AUTHSTATE_HARNESS_REQUIRE_NODE 812 pre-keys in 0.25 s\n"
            "session 5511999999999.0 company acme-1 key 120363000000000@g.us::5511999999999::0")
    assert scrub(text) == text


def test_scrub_tree_reaches_nested_strings_and_keys() -> None:
    secret = base64.b64encode(bytes(range(32))).decode()
    tree = {"failures": [{"message": f"value {secret}"}], secret: 1, "n": 3}
    out = scrub_tree(tree)
    assert secret not in repr(out) and out["n"] == 3


@pytest.mark.parametrize(("dump", "secret"), [
    ("Client {\n    processID: 4242,\n    secretKey: 617715752,\n    ssl: false }", "617715752"),
    ("{ noiseKey: { private: <Buffer 8f 3a 01 02 ... 28 more bytes> } }", "8f 3a"),
    ("signedPreKey: Uint8Array(32) [\n  143, 58, 1, 2,\n  ... 28 more items\n]", "143, 58"),
    ("{ apiKey: 'sk_live_abc', authToken=\"t0ps3cret\" }", "sk_live_abc"),
])
def test_a_javascript_stores_crash_dump_loses_its_secrets(dump: str, secret: str) -> None:
    """A Node.js target's crashed sidecar prints objects the way util.inspect does: Buffers as
    spaced hex, node-postgres' cancel key, creds' private halves."""
    scrubbed = scrub(dump)
    assert secret not in scrubbed
    assert "<redacted>" in scrubbed


def test_a_quoted_id_ending_in_b_is_text_not_a_bytes_literal() -> None:
    """A finding naming company 'a_b' stays readable; a real bytes literal is still caught."""
    text = "cross-tenant: keys.clear() on company 'a_b' changed company 'axb', which it must"
    assert scrub(text) == text
    assert "\\x8f" not in scrub("got [b'\\x8f\\x01\\x02\\x03\\x04\\x05'] from the store")
