"""The static site: reference pages, guides and the JSON schema, built with MkDocs and the Material theme.

The site's sources are staged in a scratch folder: the hand-written pages and
the MkDocs configuration shipped in `assets/`, the reference pages generated
for every documented class (plugins installed here included), the guides
with their commands run, their images (from the repository's `docs/images/`),
and the JSON schema at `fastmoe.schema.json` (a stable address for
yaml-language-server). Only `build` and `serve` import
MkDocs; without it they raise `MissingMkDocs`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from fastmoe_cfg.docs_gen.catalog import DocsError, build_catalog
from fastmoe_cfg.docs_gen.markdown import INDEX_PAGE, TIERS_PAGE, page_name
from fastmoe_cfg.docs_gen.reference import default_roots, reference_pages
from fastmoe_cfg.docs_gen.walkthrough import commands_in, render_guide

__all__ = ["INSTALL_HINT", "SCHEMA_FILE", "MissingMkDocs", "Step", "build_steps", "planned_commands", "serve"]

INSTALL_HINT = "pip install 'fastmoe_cfg[docs]'"
SCHEMA_FILE = "fastmoe.schema.json"
GUIDES = {
    "writing-a-config.md": "Writing a config",
    "routing-families.md": "Routing of other MoE families",
    "hugging-face.md": "Import from Hugging Face",
    "coming-from-another-framework.md": "Coming from another framework",
    "hybrid-moe.md": "Hybrid dense + MoE, Fast-LLM configs",
    "expert-parallelism.md": "Expert parallelism",
    "train-moe-lm.md": "Train a small MoE LM",
    "writing-a-variant.md": "Writing a variant",
}  # asset -> title, under guide/
IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"  # the guides' plots (PNG), committed in the repository


class MissingMkDocs(RuntimeError):
    def __init__(self) -> None:
        super().__init__(f"building the docs site needs MkDocs and the Material theme: {INSTALL_HINT}")


@dataclass(frozen=True)
class Step:
    label: str
    run: Callable[[], None]


def _asset(name: str) -> str:
    return resources.files("fastmoe_cfg.docs_gen").joinpath("assets", name).read_text(encoding="utf-8")


HF_SUPPORT_TABLE = "<!-- fastmoe:hf-support-table -->"  # replaced by the table of fastmoe_cfg.hf.support


def guide_source(name: str) -> str:
    """A guide's Markdown before its commands run: the asset, with the tables generated from the code filled in."""
    text = _asset(name)
    if HF_SUPPORT_TABLE in text:
        from fastmoe_cfg.hf.support import markdown_table

        text = text.replace(HF_SUPPORT_TABLE, markdown_table())
    return text


def _require_mkdocs() -> None:
    try:
        import material  # noqa: F401
        import mkdocs  # noqa: F401
    except ImportError:
        raise MissingMkDocs() from None


class _Stage:
    """The MkDocs project in a scratch folder: `root/mkdocs.yml`, `root/docs/`."""

    def __init__(self, root: Path):
        self.root = root
        self.docs = root / "docs"
        self.reference: list[str] = []
        self.enums: list[str] = []

    def write(self, relative: str, text: str) -> None:
        path = self.docs / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def add_reference(self) -> None:
        catalog = build_catalog(default_roots(), builtin_only=False)
        pages = reference_pages(catalog=catalog)
        for name, text in pages.items():
            self.write(f"reference/{name}", text)
        self.reference = list(pages)
        self.enums = [page_name(kind) for kind in catalog.enums]

    def add_static(self) -> None:
        from fastmoe_cfg.config.schema import json_schema

        self.write("index.md", _asset("index.md"))
        self.write("stylesheets/extra.css", _asset("extra.css"))
        images = sorted(IMAGES.glob("*.png"))
        if not images:
            raise DocsError([f"the guides' images are missing: no PNG files in {IMAGES} (build the site from a checkout of the repository)"])
        for image in images:
            (self.docs / "images").mkdir(parents=True, exist_ok=True)
            (self.docs / "images" / image.name).write_bytes(image.read_bytes())
        self.write(SCHEMA_FILE, json.dumps(json_schema(default_roots()[0]), indent=2) + "\n")

    def config_file(self, site_dir: Path) -> Path:
        """mkdocs.yml: the shipped configuration plus the folders and the navigation (JSON is YAML)."""
        import yaml  # MkDocs depends on PyYAML

        config: dict[str, Any] = yaml.safe_load(_asset("mkdocs.yml"))
        from fastmoe_cfg.docs_gen.versions import VERSIONS_PAGE

        classes = [name for name in self.reference if name not in (INDEX_PAGE, TIERS_PAGE, VERSIONS_PAGE, *self.enums)]
        config.update(
            docs_dir=str(self.docs),
            site_dir=str(site_dir.resolve()),
            strict=True,
            nav=[
                {"Home": "index.md"},
                {"Guide": [{title: f"guide/{name}"} for name, title in GUIDES.items()] + [{"Tiers": f"reference/{TIERS_PAGE}"}, {"Version changes": f"reference/{VERSIONS_PAGE}"}]},
                {
                    "Reference": [
                        {"Overview": f"reference/{INDEX_PAGE}"},
                        *({name[:-3]: f"reference/{name}"} for name in classes),
                        {"Enums": [{name[:-3]: f"reference/{name}"} for name in self.enums]},
                    ]
                },
            ],
        )
        path = self.root / "mkdocs.yml"
        path.write_text(json.dumps(config, indent=1), encoding="utf-8")
        return path


def planned_commands() -> int:
    return sum(len(commands_in(_asset(name))) for name in GUIDES)


def build_steps(out: Path, scratch: Path, *, on_command: Callable[[str], None] = lambda text: None) -> list[Step]:
    """The steps that build the site into `out`, staging its sources in `scratch` (which must exist).

    Raises MissingMkDocs before any work when MkDocs is not installed.
    """
    _require_mkdocs()
    stage = _Stage(scratch)

    def mkdocs_build() -> None:
        from mkdocs.commands.build import build
        from mkdocs.config import load_config
        from mkdocs.exceptions import MkDocsException

        try:
            build(load_config(str(stage.config_file(out))))
        except MkDocsException as exc:  # broken links and other warnings fail the build (strict)
            raise DocsError([f"MkDocs: {exc}"]) from None

    return [*_source_steps(stage, on_command), Step("MkDocs build", mkdocs_build)]


def _source_steps(stage: _Stage, on_command: Callable[[str], None]) -> list[Step]:
    def guides() -> None:
        for name in GUIDES:
            text = render_guide(guide_source(name), stage.root / "work", on_command=lambda command: on_command(command.text))
            stage.write(f"guide/{name}", text)

    return [
        Step("reference pages", stage.add_reference),
        Step("home page, styles, JSON schema", stage.add_static),
        Step("guides (running their commands)", guides),
    ]


def serve(dev_addr: str, scratch: Path) -> None:
    """Stage the sources in `scratch` and serve the site at `dev_addr` (host:port) until interrupted."""
    _require_mkdocs()
    from mkdocs.commands.serve import serve as mkdocs_serve

    stage = _Stage(scratch)
    for step in _source_steps(stage, lambda text: None):
        step.run()
    mkdocs_serve(config_file=str(stage.config_file(scratch / "site")), livereload=True, dev_addr=dev_addr)


