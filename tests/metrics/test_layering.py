"""harness/metrics imports only the standard library and itself (it is the bottom layer)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

METRICS = Path(__file__).resolve().parents[2] / "harness" / "metrics"


def test_metrics_imports_only_stdlib_and_itself() -> None:
    offenders = []
    for path in sorted(METRICS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if name.startswith("harness.metrics") or top in sys.stdlib_module_names:
                    continue
                offenders.append(f"{path.name}: {name}")
    assert offenders == []
