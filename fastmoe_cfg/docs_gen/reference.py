"""The reference pages as a whole: generate them, write them, and compare them with the committed copy.

`docs/reference/` in the repository holds the pages of the built-in classes
(`builtin_only=True`); the site also documents the plugins installed where it
is built. `fastmoe-cfg docs generate` rewrites the folder, `docs check`
reports how it differs (CI runs it).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from fastmoe_cfg.config.base import Config
from fastmoe_cfg.docs_gen.catalog import Catalog, build_catalog
from fastmoe_cfg.docs_gen.markdown import INDEX_PAGE, TIERS_PAGE, class_page, enum_page, index_page, page_name, tiers_page

__all__ = ["REFERENCE_DIR", "REGENERATE", "default_roots", "diff_reference", "reference_pages", "write_reference"]

REFERENCE_DIR = Path("docs") / "reference"
REGENERATE = "fastmoe-cfg docs generate"


def default_roots() -> tuple[type[Config], ...]:
    from fastmoe_cfg.schemas import MLPBaseConfig, StackConfig

    return (MLPBaseConfig, StackConfig)


def reference_pages(*, builtin_only: bool = True, catalog: Catalog | None = None) -> dict[str, str]:
    """File name -> Markdown text of every reference page (index, tiers, classes, enums)."""
    catalog = catalog or build_catalog(default_roots(), builtin_only=builtin_only)
    from fastmoe_cfg.docs_gen.versions import VERSIONS_PAGE, versions_page

    pages = {INDEX_PAGE: index_page(catalog), TIERS_PAGE: tiers_page(catalog), VERSIONS_PAGE: versions_page()}
    pages.update((page_name(klass), class_page(klass, catalog)) for klass in catalog.classes)
    pages.update((page_name(kind), enum_page(kind, catalog)) for kind in catalog.enums)
    return pages


def write_reference(directory: Path, pages: dict[str, str]) -> list[str]:
    """Make `directory` hold exactly `pages` (stale .md files removed); the names written or removed."""
    directory.mkdir(parents=True, exist_ok=True)
    touched = []
    for stale in sorted(directory.glob("*.md")):
        if stale.name not in pages:
            stale.unlink()
            touched.append(stale.name)
    for name, text in pages.items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            touched.append(name)
    return touched


def diff_reference(directory: Path, pages: dict[str, str], *, context_lines: int = 3) -> list[str]:
    """A summary of how `directory` differs from `pages`: one line per file, and the first changed lines.

    Empty when they agree.
    """
    committed = {path.name: path for path in sorted(directory.glob("*.md"))} if directory.is_dir() else {}
    summary: list[str] = []
    for name in sorted(set(pages) | set(committed)):
        if name not in committed:
            summary.append(f"missing {directory / name} (generated, not committed)")
            continue
        if name not in pages:
            summary.append(f"stale {directory / name} (no longer generated)")
            continue
        old = committed[name].read_text(encoding="utf-8").splitlines()
        new = pages[name].splitlines()
        if old == new:
            continue
        changed = [line for line in difflib.unified_diff(old, new, lineterm="", n=0) if line[:1] in "+-" and line[:3] not in ("+++", "---")]
        added, removed = sum(line.startswith("+") for line in changed), sum(line.startswith("-") for line in changed)
        summary.append(f"changed {directory / name} (+{added} -{removed} lines)")
        summary += [f"    {_shorten(line)}" for line in changed[:context_lines]]
        if len(changed) > context_lines:
            summary.append(f"    ... {len(changed) - context_lines} more changed lines")
    return summary


def _shorten(line: str, width: int = 140) -> str:
    return line if len(line) <= width else line[: width - 3] + "..."
