"""examples/node-kv-store: a Node.js store on one table of its own (`session_key -> JSON text`)
behind a short adapter. It passes the chaos suite's `sever` judged from its own schema (the final
read is a fresh instance of the module), and its LIKE-delete variant really deletes another
tenant's session, which the tenant-isolation property must name `cross-tenant`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from node_bridge_support import require_node

from fixtures.chaos_smoke import describe_outcome, run_smoke_sever
from harness.chaos.scenario import ChaosResources
from harness.chaos.values import ValueFactory
from harness.metrics.history import CREDS
from harness.node_target.errors import NodeUnavailable
from harness.observe import open_reader
from harness.paths import repo_root
from harness.targets import TargetSpec, resolve_target

ADAPTER = "node:examples/node-kv-store/adapter.js"
LIKE_DELETE = "node:examples/node-kv-store/like-delete.js"
TENANT_PROPERTY = repo_root() / "scenarios" / "property" / "test_tenant_isolation.py"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def node_spec(spec: str) -> TargetSpec:
    require_node()
    try:
        return resolve_target(spec)
    except NodeUnavailable as exc:
        pytest.skip(f"{exc.message}. To enable: {exc.hint}")


async def test_one_table_store_passes_sever_judged_from_its_own_schema(
        chaos_resources: ChaosResources) -> None:
    """The harness's tables stay empty: the checker's truth comes from a fresh instance."""
    outcome = await run_smoke_sever(node_spec(ADAPTER), chaos_resources)
    item = outcome.section
    final = outcome.repetitions[0].final
    assert final.mode == "fresh-instance" and final.rows > 0, final.notes
    assert not final.unreadable, final.unreadable
    assert item["writes_during_fault"] > 0, describe_outcome(outcome)
    assert item["anomalies"] == {} and item["lost_writes"] == 0, describe_outcome(outcome)
    assert outcome.verdict == "passed", describe_outcome(outcome)


async def test_like_delete_removes_another_tenants_session(pg_dsn: str, tmp_path: Path) -> None:
    """Logging out `a_b` with `LIKE 'a_b:%'` also deletes `axb` (read by a fresh instance)."""
    spec = node_spec(LIKE_DELETE)
    target = await spec.open(pg_dsn, cache_dir=tmp_path / "writer")
    values = ValueFactory("like")
    try:
        for company in ("a_b", "axb", "a-c"):
            state = await target.load(company)
            state.creds.update(values.paired_creds("5511"))
            await state.save_creds()
            await state.keys.set({"pre-key": values.pre_keys(1, 2)})
        await target.delete_company("a_b")
    finally:
        await target.close()
    refs = {c: [CREDS, ("pre-key", "1")] for c in ("a_b", "axb", "a-c")}
    async with open_reader(spec, pg_dsn, tmp_path, mode="fresh-instance") as reader:
        seen = await reader.sample(refs)
    assert seen["a_b"].values[("pre-key", "1")] is None
    assert seen["axb"].values == {CREDS: None, ("pre-key", "1"): None}, "axb lost its session"
    assert seen["axb"].meta[CREDS] == {"fresh": True}
    assert seen["a-c"].values[("pre-key", "1")] is not None, "no wildcard match: kept"


@pytest.mark.skipif(not TENANT_PROPERTY.exists(),
                    reason="the tenant-isolation property (issue 15 §3, "
                           "scenarios/property/test_tenant_isolation.py) is not in this checkout")
def test_like_delete_fails_the_property_suite_naming_cross_tenant(tmp_path: Path) -> None:
    node_spec(LIKE_DELETE)
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--suite", "property", "--target", LIKE_DELETE,
         "--pytest-args", "-k test_an_operation_on_one_company_changes_no_other",
         "--out", str(out), "--plain"],
        cwd=repo_root(), capture_output=True, text=True, timeout=280, check=False)
    said = proc.stdout + proc.stderr
    assert proc.returncode == 1, said[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert "cross-tenant" in said or "cross-tenant" in json.dumps(report), said[-3000:]
