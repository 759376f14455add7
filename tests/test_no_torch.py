"""The config and CLI paths never import torch (nor anything under fastmoe_cfg.layers)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

# Any attempt to import torch fails as it does where torch is not installed (ModuleNotFoundError naming it).
BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith(("torch.", "triton")):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked: a torch-free path)", name=name)
        if name.startswith("fastmoe_cfg.layers"):
            raise ImportError(f"{name} imported on a torch-free path")
sys.meta_path.insert(0, _Block())
"""

CHECK = """
blocked = [name for name in sys.modules if name == "torch" or name.startswith(("torch.", "triton", "fastmoe_cfg.layers"))]
assert not blocked, blocked
"""


@pytest.mark.parametrize("module", ["fastmoe_cfg", "fastmoe_cfg.config", "fastmoe_cfg.schemas", "fastmoe_cfg.cli", "fastmoe_cfg.hf", "fastmoe_cfg.plugin"])
def test_import_is_torch_free(module: str) -> None:
    code = BLOCK + f"import {module}\n" + CHECK
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", "examples/mixtral_8x7b.yaml"],
        ["validate", "examples/model_file/model.yaml", "--key", "model.mlp", "--format", "json"],
        ["explain", "examples/mixtral_8x7b.yaml", "--hidden-size", "4096", "--all"],
        ["schema"],
        ["init", "--type", "moe"],
        ["convert", "--from-hf", "tests/data/hf_configs/deepseek_v3.json", "--layer", "0"],
        ["convert", "--from-hf", "tests/data/hf_configs/gemma4_26b_a4b.json"],
        ["docs", "check"],
        ["--version"],
    ],
)
def test_cli_commands_are_torch_free(argv: list[str]) -> None:
    code = BLOCK + (
        "from fastmoe_cfg.cli import app\n"
        f"try:\n    app({argv!r}, prog_name='fastmoe-cfg')\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n" + CHECK
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]


def test_docs_generate_is_torch_free(tmp_path) -> None:
    out = tmp_path / "reference"
    code = BLOCK + (
        "from fastmoe_cfg.cli import app\n"
        f"try:\n    app(['docs', 'generate', '--reference-dir', {str(out)!r}], prog_name='fastmoe-cfg')\n"
        "except SystemExit as exc:\n    assert not exc.code, exc.code\n" + CHECK
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(path.name for path in out.iterdir()) == sorted(path.name for path in (ROOT / "docs" / "reference").iterdir())


def test_build_without_torch_says_how_to_install_it() -> None:
    # The light install (`pip install .`): a config validates, and build() names the missing piece and the fix.
    code = BLOCK.replace('name.startswith("fastmoe_cfg.layers")', "False") + (
        "from fastmoe_cfg.schemas import MoEMLPConfig\n"
        "config = MoEMLPConfig(experts=4)\n"
        "try:\n    config.build(8)\n"
        "except ModuleNotFoundError as exc:\n    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == (
        "building a layer needs torch, which is not installed; install it with: pip install 'fastmoe_cfg[torch]' "
        "(validate, explain, schema and docs work without it)\n"
    )
