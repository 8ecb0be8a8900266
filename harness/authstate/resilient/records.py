"""Journal records: one acknowledged write (keys or creds) of one company, as JSON text.

Values stay JSON text from `keys.set` to PostgreSQL (encoded once by PreparedKeyWrite), so a
record holds text, never Python objects: nothing is decoded or encoded again on replay.

Payloads (orjson):
    {"seq": 7, "company": "acme", "kind": "keys", "at": 1718000000.123456,
     "rows": [["session", "123.0", "{...}"], ["pre-key", "5", null]]}      null = delete
    {"seq": 8, "company": "acme", "kind": "creds", "at": ..., "creds": "{...}"}
    {"kind": "applied", "through": 8}       every record with seq <= 8 is in PostgreSQL

`at` is the acknowledgement time in seconds since the epoch on the *server's* clock as this
process estimates it (see `clock.ServerClock`): replay compares it with `updated_at`.
"""

from __future__ import annotations

from typing import Any, Literal

import orjson

KEYS: Literal["keys"] = "keys"
CREDS: Literal["creds"] = "creds"
APPLIED = "applied"

Row = tuple[str, str, str | None]  # (key type, key id, JSON text or None = delete)


class JournalRecord:
    """A write waiting in the journal until PostgreSQL has it."""

    __slots__ = ("at", "company", "creds", "kind", "nbytes", "rows", "seq")

    def __init__(self, seq: int, company: str, kind: Literal["keys", "creds"], at: float,
                 rows: list[Row] | None = None, creds: str | None = None) -> None:
        self.seq = seq
        self.company = company
        self.kind = kind
        self.at = at
        self.rows: list[Row] = rows if rows is not None else []
        self.creds = creds
        self.nbytes = 0  # size of the framed record in the file, set when encoded

    @property
    def row_count(self) -> int:
        return len(self.rows) if self.kind == KEYS else 1

    def payload(self) -> bytes:
        body: dict[str, Any] = {"seq": self.seq, "company": self.company, "kind": self.kind,
                                "at": self.at}
        if self.kind == KEYS:
            body["rows"] = self.rows
        else:
            body["creds"] = self.creds
        return orjson.dumps(body)

    def __repr__(self) -> str:  # key refs only: never values
        return (f"<JournalRecord seq={self.seq} {self.kind} company={self.company!r} "
                f"rows={self.row_count}>")


def marker_payload(through: int) -> bytes:
    return orjson.dumps({"kind": APPLIED, "through": through})


class BadPayload(ValueError):
    """A payload whose checksum is right but whose content is not a record we write."""


def decode_payload(payload: bytes) -> JournalRecord | int:
    """A record, or the `through` seq of an "applied" marker."""
    try:
        body = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BadPayload(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadPayload("not an object")
    kind = body.get("kind")
    try:
        if kind == APPLIED:
            through = body["through"]
            if not isinstance(through, int):
                raise BadPayload("marker without an integer 'through'")
            return through
        seq, company, at = body["seq"], body["company"], body["at"]
        if not (isinstance(seq, int) and isinstance(company, str)
                and isinstance(at, (int, float))):
            raise BadPayload("record without seq/company/at")
        if kind == KEYS:
            rows = body["rows"]
            # Rows stay the lists orjson made (unpacked like tuples everywhere); the checksum
            # already vouches for the bytes, so this only checks the shape, cheaply.
            if not isinstance(rows, list) or any(len(row) != 3 for row in rows):
                raise BadPayload("keys record with a malformed row")
            return JournalRecord(seq, company, KEYS, float(at), rows=rows)
        if kind == CREDS:
            creds = body["creds"]
            if not isinstance(creds, str):
                raise BadPayload("creds record without creds text")
            return JournalRecord(seq, company, CREDS, float(at), creds=creds)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, BadPayload):
            raise
        raise BadPayload(f"malformed record: {type(exc).__name__}") from None
    raise BadPayload(f"unknown record kind {kind!r}")
