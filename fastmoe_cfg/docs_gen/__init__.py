"""Reference documentation generated from the schemas, and the static site around it.

Schemas -> Markdown (`reference_pages`, pure Python) -> site (`site.build_steps`,
MkDocs with the Material theme, imported only there). Every documented class
and field must have a description: a missing one is a `DocsError`, never a
silent skip.
"""

from fastmoe_cfg.docs_gen.catalog import Catalog, DocsError, build_catalog
from fastmoe_cfg.docs_gen.reference import REFERENCE_DIR, REGENERATE, diff_reference, reference_pages, write_reference

__all__ = [
    "REFERENCE_DIR",
    "REGENERATE",
    "Catalog",
    "DocsError",
    "build_catalog",
    "diff_reference",
    "reference_pages",
    "write_reference",
]
