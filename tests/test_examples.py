"""Every file in examples/ validates, and the real models' layers have their published shapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastmoe_cfg import load_config
from fastmoe_cfg.schemas import MLPConfig, MoEMLPConfig
from tests.conftest import ROOT

# Files that hold the MLP config under a key.
KEYS = {"model.yaml": "model.mlp", "train_moe_lm.yaml": "model.mlp"}
# The configs of the example plugins need their plugin installed: tests/examples/test_expert_choice_plugin.py validates them.
EXAMPLES = sorted(path for path in (ROOT / "examples").rglob("*.yaml") if "plugins" not in path.relative_to(ROOT / "examples").parts)


def test_there_are_examples() -> None:
    assert {path.name for path in EXAMPLES} >= {"moe_small.yaml", "mixtral_8x7b.yaml", "dense.yaml"}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_example_validates(path: Path) -> None:
    load_config(path, key=KEYS.get(path.name))


def test_mixtral() -> None:
    config = load_config(ROOT / "examples" / "mixtral_8x7b.yaml")
    assert isinstance(config, MoEMLPConfig)
    assert (config.experts, config.experts_per_token, config.intermediate_size) == (8, 2, 14336)
    assert config.gated and config.activation == "silu" and not config.add_linear_biases


def test_dense() -> None:
    assert isinstance(load_config(ROOT / "examples" / "dense.yaml"), MLPConfig)
