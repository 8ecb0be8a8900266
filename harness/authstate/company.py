"""Company ids: the tenant key of every row, validated before any I/O.

A company id is rejected, never sanitized: silently rewriting `acme ` to `acme` would merge two
tenants. `re.fullmatch` (not `re.match` with `$`) so a trailing newline is rejected too.
"""

from __future__ import annotations

import re

from harness.authstate.errors import InvalidCompanyId

COMPANY_ID_RULE = "1 to 50 characters from A-Z, a-z, 0-9, '_' and '-'"
_COMPANY_ID = re.compile(r"[A-Za-z0-9_-]{1,50}")
PREVIEW_CHARS = 40


def _preview(value: str) -> str:
    """An ASCII repr cut to a few dozen characters: shows look-alikes, never echoes a payload."""
    text = ascii(value)
    if len(text) <= PREVIEW_CHARS:
        return text
    return f"{text[:PREVIEW_CHARS]}... ({len(value)} characters)"


def validate_company_id(company_id: object) -> str:
    """Return `company_id` unchanged if it is a valid id; raise `InvalidCompanyId` otherwise."""
    if not isinstance(company_id, str):
        raise InvalidCompanyId(
            f"company id must be a str, got {type(company_id).__name__}",
            hint=f"pass the company id as text: {COMPANY_ID_RULE}")
    if _COMPANY_ID.fullmatch(company_id) is None:
        raise InvalidCompanyId(
            f"invalid company id {_preview(company_id)}: must be {COMPANY_ID_RULE}",
            hint="company ids are rejected, not sanitized; fix the id at its source")
    return company_id
