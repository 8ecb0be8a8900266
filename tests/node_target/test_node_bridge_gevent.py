"""The bridge inside a gevent-patched process (the load suite's Locust processes): opened and
called through the load suite's asyncio bridge from many greenlets, then closed. Run in a child
process: gevent's monkey-patching must never enter the pytest process."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from node_bridge_support import FAKE_DSN, PROBE

REPO = Path(__file__).resolve().parents[2]

SCRIPT = f"""
from gevent import monkey
monkey.patch_all()
import sys
from pathlib import Path
import gevent
from harness.load.bridge import AsyncioBridge
from harness.node_target.spec import node_info, open_node_target

node_info.cache_clear()  # resolved again inside the bridge's loop thread, as Locust does
bridge = AsyncioBridge()
target = bridge.call(open_node_target({FAKE_DSN!r}, cache_dir=Path(sys.argv[1]),
                                      module=Path({str(PROBE)!r}), export="default",
                                      deps_dir=None, label="probe", migrate_schema=False))

def user(i):
    state = bridge.call(target.load(f"c{{i}}"))
    for j in range(20):
        bridge.call(state.keys.set({{"session": {{f"a{{j}}": {{"x": j, "b": b"\\x00\\xff"}}}}}}))
        got = bridge.call(state.keys.get("session", [f"a{{j}}"]))
        assert got == {{f"a{{j}}": {{"x": j, "b": b"\\x00\\xff"}}}}, got

gevent.joinall([gevent.spawn(user, i) for i in range(10)], raise_error=True)
bridge.call(target.close())
assert target.sidecar.proc.poll() is not None
print("ok", flush=True)
"""


def test_bridge_serves_greenlets_through_the_load_bridge(node: str, tmp_path: Path) -> None:
    if importlib.util.find_spec("gevent") is None:
        pytest.skip("gevent is not installed (it comes with locust: pip install -e .)")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
