"""The observer's probe of the target's database path: any failure of the path is `down`,
never an exception that ends the probing (and with it the observer's stop)."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from harness.chaos import path_probe


class _TerminatedMidQuery:
    """A connection whose backend was terminated while its query ran (terminate-backends):
    asyncpg's protocol is left mid-operation and says so with InternalClientError."""

    terminated = False

    async def fetchrow(self, *_: Any) -> Any:
        raise asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress")

    def terminate(self) -> None:
        self.terminated = True


async def test_a_connection_terminated_mid_query_is_a_down_probe(
        monkeypatch: pytest.MonkeyPatch) -> None:
    conn = _TerminatedMidQuery()

    async def connect(*_: Any, **__: Any) -> _TerminatedMidQuery:
        return conn

    monkeypatch.setattr(path_probe.asyncpg, "connect", connect)
    probe = await path_probe.probe_once("postgresql://unused")
    assert probe.down and probe.detail == "InternalClientError", probe
    assert conn.terminated
