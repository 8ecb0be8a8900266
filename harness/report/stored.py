"""Read a stored report.json (a run folder or the file itself), older schemas upgraded or refused.

Used by `compare`, `report` and `run --baseline`: one place that says clearly why a file cannot
be used (missing, not JSON, not a harness report, written by a newer harness) with a hint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.errors import ConfigError
from harness.report.schema import SCHEMA, SCHEMA_VERSION


def report_path(path: Path) -> Path:
    """`DIR/report.json` for a run folder, the path itself for a file."""
    return path / "report.json" if path.is_dir() else path


def read_report(path: Path) -> dict[str, Any]:
    """The report as schema 2 (a version 1 document is upgraded in memory)."""
    file = report_path(path)
    if not file.exists():
        where = f"no report.json in {path}" if path.is_dir() else f"{path} does not exist"
        raise ConfigError(where, hint="pass a run folder (reports/<UTC stamp>/) or its "
                                      "report.json")
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{file} is not UTF-8 text",
                          hint="pass the report.json a run wrote") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file} is not valid JSON (line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg})",
                          hint="a run killed while writing leaves no valid report; rerun it, "
                               "or pass another run folder") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {file}: {exc.strerror}",
                          hint="check the path and its permissions") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise ConfigError(f"{file} is not an authstate-harness report (schema "
                          f"{doc.get('schema') if isinstance(doc, dict) else None!r})",
                          hint=f"expected \"schema\": \"{SCHEMA}\"; pass the report.json that "
                               "`authstate-harness run` wrote")
    version = doc.get("schema_version")
    if version == SCHEMA_VERSION:
        return doc
    if version == 1:
        return upgrade_v1(doc)
    raise ConfigError(f"{file} has schema_version {version!r}; this harness reads 1 and "
                      f"{SCHEMA_VERSION}",
                      hint="use the harness version that wrote it (see versions.harness in the "
                           "file), or upgrade this one")


def upgrade_v1(doc: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept benchmark comparisons under `figures.benchmarks`; version 2 lists Figures."""
    old = doc.get("figures") if isinstance(doc.get("figures"), dict) else {}
    figures = []
    for b in old.get("benchmarks") or []:
        if not isinstance(b, dict):
            continue
        figures.append({
            "suite": "bench", "name": b.get("name"), "value": b.get("ratio"), "unit": "x",
            "better": "higher" if b.get("higher_is_better") else "lower",
            "gate": b.get("gate"), "threshold": None, "gated": bool(b.get("gated", True)),
            "notes": b.get("note") or "",
            "context": {"metric": b.get("metric"), "unit": b.get("unit"),
                        "ours": b.get("ours"), "baseline": b.get("baseline")},
            "bound": b.get("target"), "passed": b.get("passed")})
    return {**doc, "schema_version": SCHEMA_VERSION, "upgraded_from": 1, "figures": figures,
            "benchmark_stats": old.get("benchmark_stats") or [], "chaos": {"scenarios": []}}
