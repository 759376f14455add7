"""The "Version changes" page: every format version's changes, generated from their declarations
(`fastmoe_cfg.schemas.versions.CHANGES`), so the page cannot drift from what reading an old file does."""

from __future__ import annotations

from fastmoe_cfg.docs_gen.markdown import BANNER

__all__ = ["VERSIONS_PAGE", "versions_page"]

VERSIONS_PAGE = "versions.md"

_KINDS = {
    "renamed": "renamed",
    "removed": "removed where it had no effect",
    "default": "default changed",
    "meaning": "meaning changed",
}


def versions_page() -> str:
    from fastmoe_cfg.schemas import FORMAT_VERSION
    from fastmoe_cfg.schemas.versions import CHANGES

    lines = [
        BANNER,
        "",
        "# Version changes",
        "",
        f"The current config format is version {FORMAT_VERSION}. A file sets it with `format_version: {FORMAT_VERSION}`; "
        "a file without `format_version` is version 1. Reading a file of an older version applies the changes below "
        "and prints one warning per change that touches it, with the file and line "
        "(`file:line:col: path: warning: message`). `fastmoe-cfg upgrade FILE --in-place` rewrites the file in the "
        "current version, keeping its comments and layout: renamed fields get their new name, values that had no effect "
        "and are now errors are removed, and `format_version` is set. `init`, `upgrade` and `set` write the current version.",
        "",
    ]
    for version in range(FORMAT_VERSION, 1, -1):
        changes = [change for change in CHANGES if change.version == version]
        lines += [f"## Version {version}", "", "| Field | Change | When | What changed |", "|---|---|---|---|"]
        for change in changes:
            name = f"`{change.old}` → `{change.field}`" if change.kind == "renamed" else f"`{change.field}`"
            summary = change.summary.replace("|", "\\|")
            lines.append(f"| {name} | {_KINDS[change.kind]} | {change.condition or 'always'} | {summary} |")
        if not any(change.kind == "renamed" for change in changes):
            lines += ["", "No field was renamed in this version."]
        lines.append("")
    lines += ["## Version 1", "", "The first format: every file without `format_version`.", ""]
    return "\n".join(lines)
