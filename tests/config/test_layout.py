"""The shape of `fastmoe_cfg/config/`: generic (nothing of MoE, torch or the CLI), no import cycle, public pydantic API."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

CONFIG = ROOT / "fastmoe_cfg" / "config"


def _imports(path: Path, *, annotations: bool = False) -> set[str]:
    """Every module the file imports when it runs, inside functions too; with `annotations`, also those of its
    `if TYPE_CHECKING:` blocks (type annotations only)."""
    tree = ast.parse(path.read_text())
    if not annotations:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
                node.body = []
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


MODULES = {path.stem: _imports(path) for path in CONFIG.glob("*.py") if path.stem != "__init__"}
ALL_IMPORTS = {path.stem: _imports(path, annotations=True) for path in CONFIG.glob("*.py")}


def test_config_modules_import_each_other_without_a_cycle() -> None:
    graph = {name: {other for other in MODULES if f"fastmoe_cfg.config.{other}" in imports} for name, imports in MODULES.items()}
    order: list[str] = []
    while graph:
        ready = sorted(name for name, needs in graph.items() if not needs - set(order))
        assert ready, f"import cycle among: {sorted(graph)}"
        order += ready
        for name in ready:
            del graph[name]
    assert order.index("errors") < order.index("source") < order.index("yaml_reader") < order.index("loader")
    assert order.index("registry") < order.index("base") and order.index("translate") < order.index("base")


def test_config_is_generic_and_uses_public_pydantic_api() -> None:
    for name, imports in ALL_IMPORTS.items():
        assert not any(module.startswith(("torch", "typer", "rich", "fastmoe_cfg.schemas", "fastmoe_cfg.layers")) for module in imports), name
        assert not any(module.startswith("pydantic._internal") for module in imports), name
    for path in CONFIG.glob("*.py"):
        text = path.read_text()
        for private in ("__pydantic_fields__", "__pydantic_fields_set__", "__pydantic_private__", "__pydantic_base_init__"):
            assert private not in text, (path.name, private)
