"""The fault proxy provisioning chain: which link is chosen, and each link starts and stops."""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path

import pytest

from harness.errors import ConfigError, ProvisioningError
from harness.faults import provision
from harness.faults.provision import choose_kind, provision_toxiproxy
from harness.faults.server.thread import EmbeddedServerThread
from harness.infra.ports import free_port

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("TOXIPROXY_URL", raising=False)
    monkeypatch.delenv("AUTHSTATE_TOXIPROXY", raising=False)
    return monkeypatch


@pytest.fixture
def fake_binary(tmp_path: Path, no_env: pytest.MonkeyPatch) -> Path:
    """A `toxiproxy-server` on PATH that takes Toxiproxy's flags and runs our server."""
    script = tmp_path / "toxiproxy-server"
    script.write_text(f"""#!{sys.executable}
import sys
from harness.faults.__main__ import main
args = sys.argv[1:]
flags = dict(zip(args[::2], args[1::2]))
argv = ["serve", "--host", flags["-host"], "--port", flags["-port"]]
if "-seed" in flags:
    argv += ["--seed", flags["-seed"]]
sys.exit(main(argv))
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    no_env.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    no_env.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    return script


def test_choice_order(no_env: pytest.MonkeyPatch) -> None:
    no_env.setattr("harness.infra.docker.docker_engine_available", lambda: False)
    no_env.setattr("harness.faults.provision.binary.find_binary", lambda: None)
    assert choose_kind(None) == "embedded"
    assert choose_kind("http://h:1") == "external"
    no_env.setattr("harness.infra.docker.docker_engine_available", lambda: True)
    assert choose_kind(None) == "container"
    no_env.setattr("harness.faults.provision.binary.find_binary", lambda: "/bin/toxiproxy-server")
    assert choose_kind(None) == "binary"
    assert choose_kind("http://h:1") == "external"
    no_env.setenv("AUTHSTATE_TOXIPROXY", "embedded-thread")
    assert choose_kind("http://h:1") == "embedded-thread"


def test_bad_choices_are_config_errors(no_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="unknown fault proxy provider"):
        choose_kind(None, "toxiproxy-cloud")
    with pytest.raises(ConfigError, match="needs a URL") as info:
        choose_kind(None, "external")
    assert "TOXIPROXY_URL" in (info.value.hint or "")
    assert set(provision.KINDS) == {"external", "binary", "container", "embedded",
                                    "embedded-thread"}


def test_external_is_used_and_never_stopped(no_env: pytest.MonkeyPatch) -> None:
    with EmbeddedServerThread() as server:
        no_env.setenv("TOXIPROXY_URL", server.url)
        with provision_toxiproxy() as found:
            assert found.kind == "external" and found.url == server.url
            assert not found.extensions
            found.client.create_proxy("x", "127.0.0.1:1")
        with provision_toxiproxy(server.url.removeprefix("http://")) as again:
            assert set(again.client.proxies()) == {"x"}  # still running, state intact


def test_external_that_does_not_answer(no_env: pytest.MonkeyPatch) -> None:
    from harness.faults.provision.external import ExternalToxiproxy

    with pytest.raises(ProvisioningError, match="no Toxiproxy API answered") as info:
        ExternalToxiproxy(f"127.0.0.1:{free_port()}", timeout=0.3)
    assert info.value.hint


def test_binary_on_path_is_started_and_stopped(fake_binary: Path) -> None:
    assert choose_kind(None) == "binary"
    with provision_toxiproxy(seed=3) as found:
        assert found.kind == "binary" and found.version == "2.12.0"
        proxy = found.client.create_proxy("b", "127.0.0.1:1")
        socket.create_connection((proxy.listen_host, proxy.listen_port), timeout=2).close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((proxy.listen_host, proxy.listen_port), timeout=2)


def test_embedded_thread_and_subprocess_report_their_seed(no_env: pytest.MonkeyPatch) -> None:
    with provision_toxiproxy(prefer="embedded-thread", seed=11) as thread:
        assert thread.kind == "embedded-thread" and thread.seed == 11 and thread.extensions
        assert thread.client.events()[0:] == []
    with provision_toxiproxy(prefer="embedded", seed=12) as sub:
        assert sub.kind == "embedded" and sub.seed == 12


@pytest.mark.skipif("not __import__('harness.infra.docker', "
                    "fromlist=['x']).docker_engine_available()",
                    reason="needs a Docker engine (none on these machines)")
def test_container(no_env: pytest.MonkeyPatch) -> None:
    with provision_toxiproxy(prefer="container") as found:
        assert found.kind == "container"
        assert found.client.version()
