"""Errors from a Toxiproxy server, carrying its HTTP status and its `error` message."""

from __future__ import annotations

import json

import httpx

from harness.errors import HarnessError

_HINTS = {
    400: "the request was refused as invalid; see the Toxiproxy API notes in "
         "harness/faults/README.md",
    403: "Toxiproxy refuses browser user agents (Mozilla/...); use a client user agent",
    404: "check the proxy or toxic name (GET /proxies lists them); it may have been deleted",
    405: "that endpoint does not take this HTTP method",
    409: "names are unique: delete the existing one first or choose another name",
    500: "the server could not do it; for a proxy this is usually a listen address in use",
}


class ToxiproxyError(HarnessError):
    """The server answered with an error: `status` and its `error` message."""

    def __init__(self, status: int, message: str, *, hint: str | None = None) -> None:
        super().__init__(f"toxiproxy: {message} (HTTP {status})",
                         hint=hint or _HINTS.get(status))
        self.status = status
        self.server_message = message


class BadRequestError(ToxiproxyError):
    """400: missing field, bad stream, unknown toxic type, malformed body."""


class NotFoundError(ToxiproxyError):
    """404: no such proxy or toxic."""


class ConflictError(ToxiproxyError):
    """409: a proxy or toxic with that name exists."""


class ToxiproxyUnavailable(ToxiproxyError):
    """No answer at all (connection refused, timeout); status is 0."""

    def __init__(self, url: str, exc: Exception) -> None:
        super().__init__(0, f"no answer from {url}: {type(exc).__name__}: {exc}",
                         hint="is the server running? `authstate-harness proxy serve` starts one; "
                         "TOXIPROXY_URL points the harness at another")


_BY_STATUS: dict[int, type[ToxiproxyError]] = {400: BadRequestError, 404: NotFoundError,
                                               409: ConflictError}


def error_from_response(response: httpx.Response) -> ToxiproxyError:
    text = response.text.strip()
    message = text or response.reason_phrase
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        message = body["error"]
    cls = _BY_STATUS.get(response.status_code, ToxiproxyError)
    return cls(response.status_code, message)
