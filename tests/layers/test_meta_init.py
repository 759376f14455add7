"""Meta-device initialisation: build under torch.device("meta"), to_empty(), reset_parameters() equals a direct build."""

from __future__ import annotations

import pytest
import torch

from fastmoe_cfg.schemas import MLPBaseConfig

CONFIGS = {
    "mlp": {"type": "mlp", "intermediate_size": 6, "gated": True, "pre_norm": {"type": "layer_norm"}, "post_norm": {"type": "rms_norm"}},
    "moe-everything": {
        "type": "moe", "experts": 6, "shared_experts": 1, "experts_per_token": 2, "intermediate_size": 4, "gated": True,
        "add_linear_biases": True, "pre_norm": {"type": "rms_norm"}, "post_norm": {"zero_centered": True},
        "router_normalization": {"type": "layer_norm"}, "router_scale": {"enabled": True, "initialization": {"type": "uniform", "scale": 0.5}},
        "router_per_expert_scale": {"enabled": True, "initialization": {"type": "normal", "mean": 1.0, "std": 0.1}},
        "router_bias": {"enabled": True, "initialization": {"type": "normal", "std": 0.3}}, "shared_expert_gate": {"enabled": True},
        "layer_2": {"weight": {"initialization": {"type": "normal", "std": 0.2, "min": -0.1, "max": 0.3}}},
    },
    "deepseek-aux_free": {
        "type": "moe", "experts": 9, "shared_experts": 1, "experts_per_token": 2, "intermediate_size": 4, "routing": "aux_free",
        "router_score_function": "sigmoid", "expert_groups": 4, "expert_groups_per_token": 2,
    },
}


def build(data: dict, seed: int, device: str | None = None, dtype=torch.float32):
    torch.manual_seed(seed)
    config = MLPBaseConfig.from_dict(data)
    if device is None:
        return config.build(8, dtype=dtype)
    with torch.device(device):
        return config.build(8, dtype=dtype)


@pytest.mark.parametrize("name", CONFIGS)
def test_meta_build_then_reset_equals_a_direct_build(name):
    direct = build(CONFIGS[name], seed=5)
    meta = build(CONFIGS[name], seed=0, device="meta")
    assert all(p.is_meta for p in meta.parameters())
    meta.to_empty(device="cpu")
    torch.manual_seed(5)
    meta.reset_parameters()
    expected, actual = direct.state_dict(), meta.state_dict()
    assert actual.keys() == expected.keys()
    for key in expected:
        assert actual[key].dtype == expected[key].dtype and torch.equal(actual[key], expected[key]), key
    if name == "deepseek-aux_free":  # the buffers too: to_empty left them uninitialised
        assert torch.equal(meta.pending_load, torch.zeros(8, dtype=torch.int64))
        assert meta.router_correction_bias.dtype == torch.float32


def test_reset_parameters_redraws_a_trained_layer():
    layer = build(CONFIGS["deepseek-aux_free"], seed=1)
    initial = {key: value.clone() for key, value in layer.state_dict().items()}
    layer.train()
    layer(torch.randn(7, 8)).square().sum().backward()
    layer.update_bias()
    with torch.no_grad():
        for parameter in layer.parameters():
            parameter.add_(1.0)
    assert not torch.equal(layer.router_correction_bias, initial["router_correction_bias"])
    torch.manual_seed(1)
    layer.reset_parameters()
    for key, value in layer.state_dict().items():
        assert torch.equal(value, initial[key]), key
    assert torch.equal(layer.pending_load, torch.zeros(8, dtype=torch.int64))
