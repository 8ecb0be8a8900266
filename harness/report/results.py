"""`results.json`: the one file through which suites hand their numbers to the main job.

Written by the pytest plugin `fixtures.results` (option `--results FILE`), read by the main job
after the child pytest exits:

    {"schema_version": 1,
     "figures": [Figure.to_dict(), ...],          # every measured number, gated or not
     "sections": {"chaos": [{...}, ...], ...}}    # richer per-suite data, one item per record

The writer replaces the whole file atomically after every record, so a child killed mid-run
leaves every record made before the kill and a reader never sees half a file. Everything is
scrubbed (key material, passwords) before it is written, and non-finite floats become null
(JSON has no Infinity; a value that never converged is "not measured").
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.metrics.figures import Figure
from harness.report.redact import scrub_tree

RESULTS_SCHEMA_VERSION = 1


def plain(value: Any) -> Any:
    """A JSON-ready copy: mappings -> dicts (str keys), sequences -> lists, inf/nan -> None.

    Raises TypeError for anything JSON cannot carry, so a suite learns at record time, not when
    the report is written.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    raise TypeError(f"cannot record a {type(value).__name__} in results.json: use numbers, "
                    "strings, booleans, None, lists and dicts")


@dataclass
class Results:
    """Figures and sections of one run, in the order they were recorded."""

    figures: list[Figure] = field(default_factory=list)
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    problem: str | None = None  # why the file could not be read in full, if it could not

    def to_json(self) -> str:
        return results_json([figure_dict(f) for f in self.figures],
                            {name: [section_item(i) for i in items]
                             for name, items in self.sections.items()})

    def section(self, name: str) -> list[dict[str, Any]]:
        return self.sections.get(name, [])


def figure_dict(figure: Figure) -> dict[str, Any]:
    """A figure as stored: scrubbed, JSON-ready (inf/nan -> None)."""
    return scrub_tree(plain(figure.to_dict()))


def section_item(item: Mapping[str, Any]) -> dict[str, Any]:
    """A section item as stored: scrubbed, JSON-ready."""
    return scrub_tree(plain(item))


def results_json(figures: Sequence[Mapping[str, Any]],
                 sections: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """The file's text from already prepared figure dicts and section items."""
    doc = {"schema_version": RESULTS_SCHEMA_VERSION, "figures": list(figures),
           "sections": {name: list(items) for name, items in sections.items()}}
    return json.dumps(doc, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def read_results(path: Path) -> Results:
    """What the child recorded; empty (with `problem` set) when the file is missing or bad.

    A missing file is normal (no suite recorded anything, or pytest never started); a figure
    that does not parse is skipped and named in `problem`, never silently dropped.
    """
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Results()
    except (OSError, ValueError) as exc:
        return Results(problem=f"{path.name} is unreadable: {exc}")
    if not isinstance(doc, dict) or doc.get("schema_version") != RESULTS_SCHEMA_VERSION:
        return Results(problem=f"{path.name} has no schema_version {RESULTS_SCHEMA_VERSION}")
    results, bad = Results(), []
    for raw in _list(doc.get("figures")):
        try:
            results.figures.append(Figure.from_dict(raw))
        except (KeyError, TypeError, ValueError) as exc:
            bad.append(f"{raw.get('name') if isinstance(raw, dict) else raw!r}: {exc}")
    sections = doc.get("sections")
    if isinstance(sections, dict):
        results.sections = {str(name): [i for i in _list(items) if isinstance(i, dict)]
                            for name, items in sections.items()}
    if bad:
        results.problem = f"{len(bad)} figure(s) in {path.name} did not parse: " + "; ".join(
            bad[:3])
    return results


def _list(value: object) -> Sequence[Any]:
    return value if isinstance(value, list) else []
