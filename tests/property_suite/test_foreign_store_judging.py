"""The property suite judges a store it did not write by what it does: a value round-trips
exactly, or is refused -- in the store's own words -- with nothing written.

foreign_store.py is such a store, correct and unlike ours: its own table, JSON text (a NUL in a
string is kept exactly, where ours refuse it), any string taken as a company id but kept apart,
`TypeError("invalid company id null")` for an id that is not a string, a database error let
through for a NUL in an id. It must pass the judging, the isolation property and the machine.
"""

from __future__ import annotations

import subprocess
import sys

from harness.infra.postgres import PostgresServer
from harness.paths import repo_root

FOREIGN = "tests/property_suite/foreign_store.py:open_store"


def test_a_correct_store_with_its_own_schema_and_words_passes(pg_server: PostgresServer) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "scenarios/property/test_store_properties.py::"
         "test_unstorable_value_round_trips_or_is_refused_with_nothing_written",
         "scenarios/property/test_store_properties.py::"
         "test_invalid_company_ids_are_refused_or_kept_apart",
         "scenarios/property/test_tenant_isolation.py",
         "scenarios/property/test_store_stateful.py::test_store_behaves_like_the_model",
         "--target", FOREIGN, "--pg-dsn", pg_server.dsn, "--hypothesis-profile", "small"],
        cwd=repo_root(), capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "4 passed" in proc.stdout
