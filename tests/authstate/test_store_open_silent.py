"""open() against a listener that accepts TCP and never answers says what timed out, where and
after how long (it used to end in a bare `TimeoutError: `)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from harness.authstate import PostgresAuthStore, StoreTimeout


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A real socket that completes TCP handshakes (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


async def test_open_against_a_silent_listener_says_what_timed_out(silent_listener) -> None:
    port = silent_listener
    with pytest.raises(StoreTimeout) as info:
        await PostgresAuthStore.open(f"postgresql://u:hunter2@127.0.0.1:{port}/db",
                                     connect_timeout=0.3)
    err = info.value
    text = str(err)
    assert f"127.0.0.1:{port}" in text and "connect_timeout 0.3 s" in text
    assert "startup and authentication" in text and "hunter2" not in text
    cause = err.__cause__
    assert isinstance(cause, TimeoutError) and str(cause), "the cause must not be empty"
    assert f"127.0.0.1:{port}" in str(cause) and "never answered" in str(cause)
    assert err.waited_s is not None and err.waited_s >= 0.3
