"""`authstate-harness proxy serve` and `python -m harness.faults serve`, as a user runs them."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.faults.provision.process import child_env

pytestmark = pytest.mark.timeout(60)

CLI = [sys.executable, "-m", "harness.cli"]


class Served:
    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self._log_file = log.open("wb")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._log_file, env=child_env())

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, within: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text())
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not in server output:\n{self.text()}")

    def stop(self, sig: int = signal.SIGINT) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(15)
        finally:
            if self.proc.stdout:
                self.proc.stdout.close()
            self._log_file.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    started: list[Served] = []

    def _serve(*args: str, module: bool = False) -> Served:
        argv = ([sys.executable, "-m", "harness.faults", "serve"] if module
                else [*CLI, "proxy", "serve"]) + list(args)
        served = Served(argv, tmp_path / f"serve-{len(started)}.log")
        started.append(served)
        return served

    yield _serve
    for served in started:
        if served.proc.poll() is None:
            served.proc.kill()
            served.stop()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI; stderr comes back with rich's line wrapping undone."""
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60,
                            env=child_env(), check=False)
    result.stderr = " ".join(result.stderr.split())
    return result


def test_serve_with_config_logs_and_stops_cleanly(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    upstream = socket.create_server(("127.0.0.1", 0))
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "pg", "listen": "127.0.0.1:0",
                                   "upstream": f"127.0.0.1:{upstream.getsockname()[1]}"}]))
    served = serve("--port", "0", "--seed", "5", "--config", str(config))
    url = served.wait_for(r"\((http://127\.0\.0\.1:\d+); seed 5\)").group(1)
    served.wait_for(r"created 1 proxy from")
    with httpx.Client(base_url=url) as http:
        proxy = http.get("/proxies/pg").json()
        assert proxy["enabled"] is True
        toxic = http.post("/proxies/pg/toxics", json={"type": "latency",
                                                      "attributes": {"latency": 1}})
        assert toxic.status_code == 200
        host, _, port = proxy["listen"].rpartition(":")
        client = socket.create_connection((host, int(port)))
        accepted, _ = upstream.accept()
        client.sendall(b"via the proxy")
        assert accepted.recv(100) == b"via the proxy"
        served.wait_for(r"connection_opened proxy=pg connection=1")
    served.wait_for(r"POST /proxies/pg/toxics -> 200")
    assert served.stop(signal.SIGINT) == 0
    text = served.text()
    assert "shutting down" in text
    assert re.search(r"connection_closed proxy=pg connection=1 .*reason=server stopped", text)
    assert client.recv(10) == b""  # the live connection was closed
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, int(port)), timeout=2)
    client.close()
    accepted.close()
    upstream.close()


def test_module_entry_announces_and_stops_on_sigterm(serve) -> None:  # type: ignore[no-untyped-def]
    served = serve("--port", "0", "--announce", "--proxy-metrics", module=True)
    assert served.proc.stdout is not None
    announced = json.loads(served.proc.stdout.readline())
    assert set(announced) == {"url", "pid", "seed"} and announced["pid"] == served.proc.pid
    with httpx.Client(base_url=announced["url"]) as http:
        assert http.get("/version").json() == {"version": "2.12.0"}
        assert http.get("/metrics").status_code == 200
    assert served.stop(signal.SIGTERM) == 0


@pytest.mark.parametrize(("content", "expected"), [
    ("[{", "is not valid JSON: Expecting property name enclosed in double quotes at line 1"),
    ('{"name": "pg"}', "must be a JSON array of proxies, not object"),
    ('[{"name": "pg"}]', "missing required field: upstream at proxy 1"),
    ('[{"name": "pg", "upstream": "x:1", "listen": "bad"}]',
     "listen tcp: address bad: missing port in address"),
])
def test_bad_config_is_a_clear_error(tmp_path: Path, content: str, expected: str) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(content)
    result = run_cli("proxy", "serve", "--port", "0", "--config", str(config))
    assert result.returncode == 2
    assert str(config) in result.stderr
    assert expected in result.stderr
    assert "hint:" in result.stderr


def test_missing_config_and_busy_port(tmp_path: Path) -> None:
    result = run_cli("proxy", "serve", "--port", "0", "--config", str(tmp_path / "nope.json"))
    assert result.returncode == 2
    assert f"cannot read proxy config {tmp_path / 'nope.json'}: No such file" in result.stderr
    busy = socket.create_server(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    result = run_cli("proxy", "serve", "--port", str(port))
    busy.close()
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_help_lists_the_options() -> None:
    result = run_cli("proxy", "serve", "--help")
    assert result.returncode == 0
    for option in ("--host", "--port", "--seed", "--config", "--proxy-metrics"):
        assert option in result.stdout
