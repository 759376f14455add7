"""Building: every example builds, with exactly the parameters `explain` counts; the README's layer example runs."""

from __future__ import annotations

import re

import pytest
import torch

from fastmoe_cfg import load_config
from fastmoe_cfg.schemas import MLPBaseConfig
from fastmoe_cfg.schemas.counts import count_layer
from tests.conftest import ROOT
from tests.test_examples import EXAMPLES, KEYS


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.stem for path in EXAMPLES])
def test_example_builds_with_the_counted_parameters(path):
    config = load_config(path, key=KEYS.get(path.name))
    layer = config.build(4096, device="meta")  # real sizes, no memory
    counted = config.counts(4096) if config.type == "stack" else count_layer(config, 4096)  # a stack: every layer
    assert sum(p.numel() for p in layer.parameters()) == counted.total_parameters


@pytest.mark.parametrize(
    "data",
    [
        {"type": "moe", "experts": 6, "shared_experts": 2, "gated": True, "router_normalization": {"type": "rms_norm"},
         "router_scale": {"enabled": True}, "router_per_expert_scale": {"enabled": True}, "pre_norm": {}, "post_norm": {},
         "layer_2": {"bias": {"enabled": False}}},
        {"type": "mlp", "add_linear_biases": False, "pre_norm": {"type": "rms_norm"}},
    ],
    ids=["moe", "mlp"],
)
def test_counts_match_built_parameters(data):
    config = MLPBaseConfig.from_dict({**data, "intermediate_size": 12})
    layer = config.build(16)
    assert sum(p.numel() for p in layer.parameters()) == count_layer(config, 16).total_parameters


def test_readme_layer_example_runs():
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The layer") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102
    layer, y = namespace["layer"], namespace["y"]
    assert y.shape == (4, 128, 256)
    assert int(layer.stats["tokens_per_expert"].sum()) == 4 * 128
    assert isinstance(namespace["optimizer"], torch.optim.AdamW)


def test_routing_guide_training_loop_runs(tmp_path, monkeypatch):
    """The Python example of the routing guide runs on the guide's own DeepSeek-V3 YAML, and update_bias moves the bias."""
    text = (ROOT / "fastmoe_cfg" / "docs_gen" / "assets" / "routing-families.md").read_text()
    (tmp_path / "deepseek_v3.yaml").write_text(re.search(r"```yaml file=deepseek_v3.yaml\n(.*?)```", text, re.S).group(1))
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "routing-families.md", "exec"), namespace)  # noqa: S102
    layer = namespace["layer"]
    assert int(layer.stats["tokens_per_expert"].sum()) == 2 * 16 * 8
    # Every expert's load differs from the mean of 2·16·8/256 = 1 unless it got exactly one token: the bias moved by ±0.001.
    moved = layer.router_correction_bias.abs()
    assert torch.all((moved == 0) | torch.isclose(moved, torch.tensor(1e-3)))
    assert (moved > 0).sum() > 128
