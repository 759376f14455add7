"""Parameters: initialization configs, biases, normalization options, learning-rate scales."""

from __future__ import annotations

import math

import pytest
import torch

from fastmoe_cfg.layers import parameter_groups
from fastmoe_cfg.layers.initialization import initialize_
from fastmoe_cfg.schemas import InitializationConfig
from tests.layers.conftest import build
from tests.layers.reference import Norm


def init(data: dict, size: int = 200_000) -> torch.Tensor:
    torch.manual_seed(0)
    return initialize_(torch.empty(size), InitializationConfig.from_dict(data), InitializationConfig.from_dict({"type": "fill", "value": 7.0}))


def test_normal_mean_and_std():
    values = init({"type": "normal", "mean": 2.0, "std": 0.5})
    assert values.mean().item() == pytest.approx(2.0, abs=0.005)  # standard error 0.5/√200000 ≈ 0.0011
    assert values.std().item() == pytest.approx(0.5, rel=0.01)


def test_truncated_normal_stays_in_bounds_with_the_truncated_moments():
    values = init({"type": "normal", "std": 1.0, "min": -1.0, "max": 2.0}).double()
    assert values.min() >= -1.0 and values.max() <= 2.0
    # Mean of N(0,1) truncated to [a, b]: (φ(a) - φ(b)) / (Φ(b) - Φ(a)).
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    cdf = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    assert values.mean().item() == pytest.approx((phi(-1) - phi(2)) / (cdf(2) - cdf(-1)), abs=0.005)


def test_one_sided_truncation_far_in_the_tail():
    values = init({"type": "normal", "std": 1.0, "min": 6.0}, size=10_000)
    assert values.min() >= 6.0 and values.max() < 8.0 and torch.isfinite(values).all()


def test_uniform_and_fill():
    values = init({"type": "uniform", "mean": 1.0, "scale": 0.25})
    assert values.min() >= 0.75 and values.max() <= 1.25
    assert values.mean().item() == pytest.approx(1.0, abs=0.002)
    assert torch.equal(init({"type": "fill", "value": -3.5}, size=10), torch.full((10,), -3.5))


def test_none_uses_the_owner_default():
    torch.manual_seed(0)
    assert torch.equal(initialize_(torch.empty(4), None, InitializationConfig.from_dict({"type": "fill", "value": 7.0})), torch.full((4,), 7.0))


def test_layer_defaults_router_std_is_hidden_size_to_the_minus_half():
    layer = build({"type": "moe", "experts": 64, "intermediate_size": 256, "pre_norm": {}}, 1024, dtype=torch.float32, randomize=False)
    assert layer.router.weight.std().item() == pytest.approx(1024**-0.5, rel=0.02)
    assert layer.experts.layer_1.weight.std().item() == pytest.approx(1024**-0.5, rel=0.02)
    assert layer.experts.layer_2.weight.std().item() == pytest.approx(256**-0.5, rel=0.02)
    assert torch.equal(layer.experts.layer_1.bias, torch.zeros_like(layer.experts.layer_1.bias))
    assert torch.equal(layer.pre_norm.weight, torch.ones(1024)) and torch.equal(layer.pre_norm.bias, torch.zeros(1024))


def test_initialization_configs_reach_every_parameter():
    fill = lambda value: {"initialization": {"type": "fill", "value": value}}  # noqa: E731
    layer = build(
        {
            "type": "moe", "experts": 3, "shared_experts": 1, "intermediate_size": 4,
            "router": {"weight": fill(0.5)},
            "layer_1": {"weight": fill(1.0), "bias": fill(2.0)},
            "layer_2": {"weight": fill(3.0), "bias": fill(4.0)},
            "pre_norm": {"type": "rms_norm", "weight": fill(5.0)},
            "post_norm": {"type": "layer_norm", "bias": fill(6.0)},
            "router_normalization": {"type": "rms_norm", "zero_centered": True},
            "router_scale": {"enabled": True, **fill(7.0)},
            "router_per_expert_scale": {"enabled": True},
        },
        randomize=False,
    )
    expected = {
        "router.weight": 0.5, "experts.layer_1.weight": 1.0, "experts.layer_1.bias": 2.0, "experts.layer_2.weight": 3.0,
        "experts.layer_2.bias": 4.0, "shared.layer_1.weight": 1.0, "shared.layer_1.bias": 2.0, "shared.layer_2.weight": 3.0,
        "shared.layer_2.bias": 4.0, "pre_norm.weight": 5.0, "post_norm.weight": 1.0, "post_norm.bias": 6.0,
        "router_normalization.weight": 0.0, "router_scale": 7.0, "router_per_expert_scale": 1.0,
    }
    actual = {name: p for name, p in layer.named_parameters()}
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert torch.equal(actual[name], torch.full_like(actual[name], value)), name


@pytest.mark.parametrize(
    ("fields", "biases"),
    [
        ({}, {"layer_1.bias", "layer_2.bias"}),
        ({"add_linear_biases": False}, set()),
        ({"add_linear_biases": False, "layer_1": {"bias": {"enabled": True}}}, {"layer_1.bias"}),
        ({"layer_2": {"bias": {"enabled": False}}}, {"layer_1.bias"}),
    ],
)
def test_biases_follow_add_linear_biases_unless_a_layer_overrides(fields, biases):
    for data, prefixes in (({"type": "mlp", "intermediate_size": 4}, [""]), ({"type": "moe", "shared_experts": 1, "experts": 3, "intermediate_size": 4}, ["experts.", "shared."])):
        names = {name for name, _ in build({**data, **fields}).named_parameters() if name.endswith("bias")}
        assert names == {prefix + bias for prefix in prefixes for bias in biases}


@pytest.mark.parametrize(
    ("data", "norm"),
    [
        ({"type": "layer_norm", "epsilon": 0.1}, Norm("layer_norm", epsilon=0.1)),
        ({"type": "rms_norm", "epsilon": 0.1}, Norm("rms_norm", epsilon=0.1)),
        ({"type": "layer_norm", "zero_centered": True}, Norm("layer_norm", zero_centered=True)),
        ({"type": "rms_norm", "zero_centered": True}, Norm("rms_norm", zero_centered=True)),
        ({"type": "rms_norm", "epsilon": 0.1, "weight": {"enabled": False}}, Norm("rms_norm", epsilon=0.1)),
        ({"type": "layer_norm", "weight": {"enabled": False}}, Norm("layer_norm")),
    ],
)
def test_normalization_formulas(data, norm):
    layer = build({"type": "mlp", "intermediate_size": 4, "post_norm": data})
    x = torch.randn(6, 8, dtype=torch.float64)
    bias = None if layer.post_norm.bias is None else layer.post_norm.bias
    expected = torch.stack([norm(row, layer.post_norm.weight, bias) for row in x])
    torch.testing.assert_close(layer.post_norm(x), expected, rtol=1e-12, atol=1e-12)


def test_a_disabled_norm_weight_is_not_a_parameter():
    layer = build({"type": "mlp", "intermediate_size": 4, "post_norm": {"type": "layer_norm", "weight": {"enabled": False}}})
    assert layer.post_norm.weight is None
    assert {name for name, _ in layer.named_parameters() if name.startswith("post_norm")} == {"post_norm.bias"}
    assert "post_norm.weight" not in layer.lr_scales and "post_norm.bias" in layer.lr_scales
    assert sum(len(group["params"]) for group in parameter_groups(layer, lr=1.0)) == len(list(layer.parameters()))


def test_type_none_normalization_builds_nothing():
    layer = build({"type": "mlp", "intermediate_size": 4, "pre_norm": {"type": "none"}})
    assert layer.pre_norm is None and not any(name.startswith("pre_norm") for name, _ in layer.named_parameters())


def test_lr_scale_is_the_product_down_the_tree():
    layer = build(
        {
            "type": "moe", "experts": 3, "shared_experts": 1, "intermediate_size": 4, "lr_scale": 0.5,
            "router": {"lr_scale": 0.1, "weight": {"lr_scale": 2.0}},
            "layer_1": {"lr_scale": 3.0, "bias": {"lr_scale": 0.0}},
            "layer_2": {"weight": {"lr_scale": 4.0}},
            "pre_norm": {"weight": {"lr_scale": 5.0}},
            "router_scale": {"enabled": True, "lr_scale": 6.0},
        }
    )
    assert layer.lr_scales == {
        "router_scale": 3.0,
        "router.weight": 0.1,
        "pre_norm.weight": 2.5,
        "pre_norm.bias": 0.5,
        "experts.layer_1.weight": 1.5,
        "experts.layer_1.bias": 0.0,
        "experts.layer_2.weight": 2.0,
        "experts.layer_2.bias": 0.5,
        "shared.layer_1.weight": 1.5,
        "shared.layer_1.bias": 0.0,
        "shared.layer_2.weight": 2.0,
        "shared.layer_2.bias": 0.5,
    }
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), layer)
    groups = {group["lr_scale"]: group for group in parameter_groups(model, lr=0.1)}
    names = {id(p): n for n, p in model.named_parameters()}
    assert {scale: sorted(names[id(p)] for p in group["params"]) for scale, group in groups.items()} == {
        1.0: ["0.bias", "0.weight"],
        3.0: ["1.router_scale"],
        0.1: ["1.router.weight"],
        2.5: ["1.pre_norm.weight"],
        0.5: ["1.experts.layer_2.bias", "1.pre_norm.bias", "1.shared.layer_2.bias"],
        1.5: ["1.experts.layer_1.weight", "1.shared.layer_1.weight"],
        0.0: ["1.experts.layer_1.bias", "1.shared.layer_1.bias"],
        2.0: ["1.experts.layer_2.weight", "1.shared.layer_2.weight"],
    }
    assert groups[2.5]["lr"] == pytest.approx(0.25)
    torch.optim.SGD(parameter_groups(model, lr=0.1))  # directly usable


def test_build_device_dtype_and_bad_hidden_size():
    from fastmoe_cfg.schemas import MoEMLPConfig

    layer = MoEMLPConfig(experts=4, intermediate_size=8).build(16, dtype=torch.bfloat16, device="cpu")
    assert {p.dtype for p in layer.parameters()} == {torch.bfloat16}
    for bad in (0, -1, 2.5, True, "16"):
        with pytest.raises(ValueError) as info:
            MoEMLPConfig().build(bad)
        assert str(info.value) == f"hidden_size must be a positive integer, got {bad!r}"
