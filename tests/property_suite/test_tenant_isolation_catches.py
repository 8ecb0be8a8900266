"""The tenant-isolation checks catch what they claim.

A store whose logout deletes with an unescaped `LIKE '<company>:%'`
(tests/chaos/broken_targets/like_delete.py) must be failed naming `cross-tenant`: by the
stateful machine, and by the property suite through the CLI (exit 1). Its correct twin
(foreign_store.py) passes them: test_foreign_store_judging.py.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import Phase, given, settings
from hypothesis.stateful import run_state_machine_as_test

from fixtures.strategies import company_id_families
from harness.paths import repo_root
from harness.targets import resolve_target
from scenarios.property.test_store_stateful import StoreMachine

LIKE_DELETE = "tests/chaos/broken_targets/like_delete.py:open_store"
VALID = re.compile(r"[A-Za-z0-9_-]{1,50}")


def test_every_family_member_is_a_valid_id_and_the_collisions_are_drawn() -> None:
    """The strategy draws only ids a store must accept, and each family of collisions."""
    seen = {"wildcard": False, "prefix": False, "case": False, "length": False}

    @settings(max_examples=300, database=None, derandomize=True)
    @given(company_id_families())
    def check(family: list[str]) -> None:
        assert 2 <= len(family) <= 5 and len(set(family)) == len(family), family
        assert all(VALID.fullmatch(c) for c in family), family
        first, rest = family[0], family[1:]
        seen["wildcard"] |= "_" in first and any(len(c) == len(first) and c != first
                                                 and c.lower() != first.lower() for c in rest)
        seen["prefix"] |= all(c.startswith(first) and len(c) > len(first) for c in rest)
        seen["case"] |= all(c.lower() == first.lower() for c in rest)
        seen["length"] |= len(first) == 50 and all(first.startswith(c) for c in rest)

    check()
    assert all(seen.values()), seen


def test_the_stateful_machine_names_cross_tenant_on_a_like_delete_store(
        pg_dsn: str, tmp_path: Path) -> None:
    spec = resolve_target(LIKE_DELETE)
    with pytest.raises(AssertionError, match=r"cross-tenant: (delete_company|keys\.clear\(\)) on "
                                             r"company '\w+_\w+' changed company"):
        run_state_machine_as_test(
            lambda: StoreMachine(spec, pg_dsn, tmp_path),
            settings=settings(max_examples=25, stateful_step_count=25, derandomize=True,
                              database=None, phases=[Phase.explicit, Phase.generate]))


def test_the_direct_read_of_rows_catches_what_the_read_api_hides(pg_dsn: str,
                                                                tmp_path: Path) -> None:
    """A store on the harness's tables that deletes with LIKE but serves reads from its own
    memory: its read API shows nothing wrong, the rows read straight from PostgreSQL do."""
    spec = resolve_target("tests/property_suite/cached_like_delete.py:open_store")
    with pytest.raises(AssertionError, match=r"cross-tenant: delete_company on company "
                                             r"'\w+_\w+' changed company '\w+'[^\n]*\n"
                                             r"\s+PostgreSQL rows: "):
        run_state_machine_as_test(
            lambda: StoreMachine(spec, pg_dsn, tmp_path),
            settings=settings(max_examples=25, stateful_step_count=25, derandomize=True,
                              database=None, phases=[Phase.explicit, Phase.generate]))


@pytest.mark.slow
def test_cli_property_run_on_a_like_delete_store_exits_1_naming_cross_tenant(
        tmp_path: Path) -> None:
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--suite", "property", "--target", LIKE_DELETE,
         "--pytest-args", "-k test_tenant_isolation", "--out", str(out), "--plain"],
        cwd=repo_root(), env=env, capture_output=True, text=True, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output[-4000:]
    assert re.search(r"cross-tenant: .+ on company 'a_b' changed company 'axb'", output), \
        output[-4000:]
    report = json.loads((out / "report.json").read_text())
    assert report["run"]["error"] is None and report["run"]["status"] == "failed"
    failures = [f for s in report["suites"] for f in s["failures"]]
    assert failures and "cross-tenant" in failures[0]["message"]
