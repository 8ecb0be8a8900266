"""Fixtures for the fault proxy's own tests: the server in the test's loop, TCP upstreams."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fault_testkit import TcpServer, start_echo, start_greeter

from harness.faults.client import AsyncToxiproxyClient
from harness.faults.server import FaultProxyServer


@pytest.fixture
async def fault_server() -> AsyncIterator[FaultProxyServer]:
    """Our server in this test's event loop, API on a free port, seed fixed."""
    server = FaultProxyServer(seed=1234)
    await server.start("127.0.0.1", 0)
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def api(fault_server: FaultProxyServer) -> AsyncIterator[AsyncToxiproxyClient]:
    async with AsyncToxiproxyClient(fault_server.url, timeout=10) as client:
        yield client


@pytest.fixture
async def http(fault_server: FaultProxyServer) -> AsyncIterator[httpx.AsyncClient]:
    """A raw HTTP client, for checking statuses, bodies and headers exactly."""
    async with httpx.AsyncClient(base_url=fault_server.url, timeout=10) as client:
        yield client


@pytest.fixture
async def echo() -> AsyncIterator[TcpServer]:
    server = await start_echo()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def greeter() -> AsyncIterator[TcpServer]:
    server = await start_greeter()
    try:
        yield server
    finally:
        await server.close()
