"""validate_company_id: valid ids pass unchanged; everything else is rejected, never sanitized,
with a message that states the rule and shows at most a short, escaped preview of the input."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given

from fixtures.strategies import company_ids, invalid_company_ids, non_str_company_ids
from harness.authstate.company import PREVIEW_CHARS, validate_company_id
from harness.authstate.errors import AuthStateError, InvalidCompanyId

MAX_MESSAGE_CHARS = 200


@given(company_ids())
@example("a")
@example("A" * 50)
@example("acme_corp-01")
def test_valid_ids_are_returned_unchanged(company_id: str) -> None:
    assert validate_company_id(company_id) is company_id


@given(invalid_company_ids())
@example("acme\n")  # re.match(r"...$") would accept this; fullmatch must not
@example("x'; DROP TABLE whatsapp_keys;--")
@example("")
@example("a" * 51)
@example("аcme")  # Cyrillic а
@example("../acme")
@example("acme\x00")
def test_invalid_ids_are_rejected_with_the_rule(company_id: str) -> None:
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,50}", company_id) is None  # the strategy's premise
    with pytest.raises(InvalidCompanyId) as info:
        validate_company_id(company_id)
    message = info.value.message
    assert "1 to 50 characters" in message and "A-Z" in message
    assert info.value.hint  # says what to do
    assert len(message) <= MAX_MESSAGE_CHARS
    assert message.isascii() and message.isprintable()  # escaped: no raw NUL, newline, RTL
    if len(ascii(company_id)) > PREVIEW_CHARS:
        assert company_id not in message  # a truncated preview, never the whole input
        assert f"({len(company_id)} characters)" in message


@given(non_str_company_ids())
def test_non_str_ids_are_rejected_naming_the_type(company_id: object) -> None:
    with pytest.raises(InvalidCompanyId, match=f"must be a str, got {type(company_id).__name__}"):
        validate_company_id(company_id)


def test_invalid_company_id_is_a_value_error_of_the_store() -> None:
    with pytest.raises(ValueError) as info:
        validate_company_id("no spaces")
    assert isinstance(info.value, AuthStateError)
    assert "'no spaces'" in str(info.value)
