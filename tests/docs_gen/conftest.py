from __future__ import annotations

import re

import pytest

from fastmoe_cfg.docs_gen import reference_pages


@pytest.fixture(scope="session")
def pages() -> dict[str, str]:
    """The reference pages of the built-in classes, generated once."""
    return reference_pages(builtin_only=True)


def tier_tables(page: str) -> dict[str, list[list[str]]]:
    """Tier -> rows (cells as Markdown text) of a class page's field tables, in page order."""
    tables: dict[str, list[list[str]]] = {}
    tier = None
    for line in page.splitlines():
        heading = re.fullmatch(r'### <span class="tier tier-(\w+)">(\w+)</span>', line)
        if heading:
            assert heading[1] == heading[2]
            tier = heading[1]
            tables[tier] = []
        elif line.startswith("## "):
            tier = None
        elif tier and line.startswith("| ") and not line.startswith(("| Field ", "|---")):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            tables[tier].append(cells)
    return tables


def plain(cell: str) -> str:
    """A cell's text without Markdown links, anchors and code marks."""
    cell = re.sub(r'<a id="[^"]*"></a>', "", cell)
    cell = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", cell)
    return cell.replace("`", "")
