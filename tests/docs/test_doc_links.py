"""Every relative link in README.md and docs/*.md leads somewhere: the file exists, and a
`#anchor` names a heading of that page (GitHub's anchor rules)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from doc_commands import REPO, doc_files, prose_lines, rel  # type: ignore[import-not-found]

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats
    numbered."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for _number, line in prose_lines(page):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        parts = heading[1].split("`")  # odd parts are code: their `<x>` is text, not a tag
        text = "".join(p if i % 2 else re.sub(r"<[^>]+>|[*_]", "", p) for i, p in enumerate(parts))
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def links() -> list[tuple[str, str, Path]]:
    found = []
    for page in doc_files():
        for number, line in prose_lines(page):
            for match in LINK.finditer(line):
                target = match[1] or match[2]
                if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                    continue
                found.append((f"{rel(page)}:{number}", target, page))
    return found


LINKS = links()


def test_the_docs_link_to_each_other() -> None:
    assert len(LINKS) >= 50, "the link finder found too little"
    readme_targets = {t.split("#")[0] for w, t, _ in LINKS if w.startswith("README.md")}
    pages = {f"docs/{p.name}" for p in (REPO / "docs").glob("*.md")}
    assert pages <= readme_targets, f"docs pages the README does not link: {pages - readme_targets}"


@pytest.mark.parametrize(("where", "target", "page"), LINKS, ids=[f"{w} {t}" for w, t, _ in LINKS])
def test_link_leads_somewhere(where: str, target: str, page: Path) -> None:
    path_part, _, anchor = target.partition("#")
    linked = (page.parent / path_part).resolve() if path_part else page
    name = str(linked.relative_to(REPO)) if linked.is_relative_to(REPO) else str(linked)
    assert linked.exists(), f"{where}: {target} -> {name} does not exist"
    if anchor and linked.suffix == ".md":
        assert anchor in anchors(linked), f"{where}: {name} has no heading #{anchor}"
