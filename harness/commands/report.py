"""`authstate-harness report DIR`: re-render report.md and report.html from report.json.

DIR is a run folder (its views are rewritten; a schema 1 report is upgraded in memory, a newer
schema refused) or a reports folder holding run folders (its index.html is rewritten).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands._console import make_console
from harness.errors import ConfigError
from harness.report.index_page import write_index
from harness.report.stored import read_report
from harness.report.writer import render_views

console = make_console()


def _report(args: argparse.Namespace) -> int:
    folder = Path(args.dir)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a directory",
                          hint="pass a run folder (reports/<UTC stamp>/) or the reports folder")
    if not (folder / "report.json").exists() and any(folder.glob("*/report.json")):
        path = write_index(folder)
        console.print(f"wrote {path}", highlight=False)
        return 0
    report = read_report(folder)
    md, html = render_views(folder, report)
    if args.index:
        write_index(folder.parent)
    note = " (schema 1, upgraded)" if report.get("upgraded_from") else ""
    console.print(f"wrote {md} and {html}{note}", highlight=False)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report", help="re-render report.md / report.html from report.json (or a folder index)",
        description="Rewrite a run folder's report.md and report.html from its report.json "
                    "(schema 1 and 2 are read; a newer schema is refused with a hint), or, for "
                    "a folder of run folders, its index.html.")
    parser.add_argument("dir", metavar="DIR", help="a run folder, or a folder of run folders")
    parser.add_argument("--index", action="store_true",
                        help="also rewrite index.html in the run folder's parent folder")
    parser.set_defaults(func=_report)
