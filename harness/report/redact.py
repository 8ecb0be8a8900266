"""Scrub key material and passwords from free text before it reaches a report or a log.

Free text here is what the harness does not compose itself: pytest failure messages, Hypothesis
falsifying examples, tracebacks. A failing property can print the Signal keys it generated, and a
connection error can print a DSN. Rather than trust every message, every line is scrubbed:

- passwords in every DSN form (`harness.dsn.redact_text`, the one place that knows them), and
  the literal password of the run's own DSN (`AUTHSTATE_DSN`) and of `PGPASSWORD`;
- Python bytes literals longer than a few bytes (`b'\\x8f...'`, `bytearray(b'...')`);
- BufferJSON's string form (`"data": "<base64>"`) whatever its content;
- base64-looking runs (key strings, Hypothesis' `@reproduce_failure` blobs) and long hex;
- BufferJSON's array form (`"data": [12, 250, ...]`);
- Node's printed Buffers and Uint8Arrays (`<Buffer 8f 3a ...>`), and values under
  secret-sounding names (`secretKey: 6177...`, `private: ...`) in a JavaScript store's output.

Heuristic by nature: it errs towards redacting (a long mixed-case token is treated as base64).
"""

from __future__ import annotations

import os
import re
from itertools import pairwise
from typing import Any

from harness.dsn import passwords_of, redact_text

# (not after a letter, digit or _: `company 'a_b' changed ...` is text, not a bytes literal)
_BYTES_LITERAL = re.compile(r"(?<![\w'\"\\])[bB]('(?:[^'\\\n]|\\.){9,}'|\"(?:[^\"\\\n]|\\.){9,}\")")
_BUFFER_STRING = re.compile(r"(?P<head>[\"']data[\"']\s*:\s*[\"'])[A-Za-z0-9+/=_-]{8,}(?=[\"'])")
_BUFFER_ARRAY = re.compile(r"(?P<head>[\"']data[\"']\s*:\s*)\[\s*\d+(?:\s*,\s*\d+){7,}\s*,?\s*\]")
_HEX = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{32,}(?![0-9A-Za-z])")
_TOKEN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{20,}={0,2}(?![A-Za-z0-9+/=_-])")
# Node's util.inspect of a Buffer / Uint8Array (a JavaScript store's crash dump of creds or keys)
_NODE_BUFFER = re.compile(r"<Buffer(?: [0-9a-f]{2})+(?: \.\.\. \d+ more bytes?)?>")
_NODE_UINT8 = re.compile(r"Uint8Array\(\d+\) \[[\d,\s]+(?:\.\.\. \d+ more items?)?\s*\]")
# a value under a secret-sounding name (`secretKey: 6177`, `"private": ...`, `apiKey=...`):
# node-postgres dumps its cancel key, creds dumps carry `private` key halves
_NAMED_SECRET = re.compile(
    r"(?P<head>(?<![A-Za-z])(?:secretKey|secret_key|secret|privateKey|private_key|private|"
    r"apiKey|api_key|accessToken|access_token|authToken|auth_token)['\"]?\s*[:=]\s*)"
    r"(?P<value>'[^'\n]*'|\"[^\"\n]*\"|[^\s,;}\]<][^\s,;}\]]*)")

REDACTED = "<redacted>"


def _random_looking(part: str) -> bool:
    """Mixed case plus digits or symbols, or case flipping far more often than in CamelCase."""
    upper = any(c.isupper() for c in part)
    lower = any(c.islower() for c in part)
    if not (upper and lower):
        return False
    if any(c.isdigit() for c in part) or "+" in part:
        return True
    flips = sum(a.isupper() != b.isupper() for a, b in pairwise(part))
    return flips > len(part) / 3  # random: ~0.6 per char; ConnectionResetError: 0.25


def _looks_like_base64(token: str) -> bool:
    """Random base64 of 15+ bytes mixes cases and digits; words, paths and identifiers rarely do.

    A token with `/` is judged segment by segment, so `reports/20261122T130501Z/report` (a path)
    is kept while base64 that happens to contain `/` is still caught by its random segments.
    """
    if token.endswith("="):
        return True
    return any(_random_looking(part) for part in token.split("/"))


def _token(match: re.Match[str]) -> str:
    token = match.group(0)
    return f"{REDACTED}[{len(token)} chars]" if _looks_like_base64(token) else token


def scrub(text: str) -> str:
    """`text` with passwords and anything that looks like key material replaced."""
    if not text:
        return text
    text = redact_text(text, passwords_of(os.environ.get("AUTHSTATE_DSN")))
    text = _NODE_BUFFER.sub(f"<Buffer {REDACTED}>", text)
    text = _NODE_UINT8.sub(f"Uint8Array [{REDACTED}]", text)
    text = _BYTES_LITERAL.sub(lambda m: f"b'{REDACTED}'", text)
    text = _BUFFER_STRING.sub(lambda m: m.group("head") + REDACTED, text)
    text = _BUFFER_ARRAY.sub(lambda m: m.group("head") + f"[{REDACTED}]", text)
    text = _HEX.sub(lambda m: f"{REDACTED}[{len(m.group(0))} hex]", text)
    text = _TOKEN.sub(_token, text)
    return _NAMED_SECRET.sub(lambda m: m.group("head") + REDACTED, text)


def scrub_tree(value: Any) -> Any:
    """Scrub every string inside a JSON-like value (dict keys included)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): scrub_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub_tree(v) for v in value]
    return value
