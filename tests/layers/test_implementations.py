"""Every implementation and expert/performance-tier setting computes the function of `looped`.

float32 on the grouped-GEMM path (torch._grouped_mm); float64 on the padded fallback.
Tolerances (relative to the largest reference value): float32 1e-5, float64 1e-12.
"""

from __future__ import annotations

import pytest
import torch

from fastmoe_cfg.layers.moe.grouped_gemm import grouped_mm_runs
from tests.layers.conftest import build, forward_backward

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}
BASE = {
    "type": "moe", "experts": 8, "experts_per_token": 3, "shared_experts": 1, "intermediate_size": 12, "gated": True,
    "pre_norm": {"type": "rms_norm"}, "add_linear_biases": True, "auxiliary_loss_coefficient": 0.05, "z_loss_coefficient": 0.01,
}
VARIANTS = {
    "dropless": {"implementation": "dropless"},
    "dropless-dynamic": {"implementation": "dropless", "dropless_dynamic_shape": True},
    "auto": {"implementation": "auto"},
    "looped-dynamic": {"implementation": "looped", "dropless_dynamic_shape": True},
}


def assert_close(actual, expected, dtype, what):
    scale = expected.abs().max().clamp_min(1e-30)
    error = (actual - expected).abs().max() / scale
    assert error <= TOLERANCE[dtype], f"{what}: relative error {error:.3g}"


def compare(variant, *, tokens, dtype, data=BASE, hidden=16, training=True, mask=None):
    reference = build({**data, "implementation": "looped"}, hidden, dtype=dtype).train(training)
    other = build({**data, **VARIANTS[variant]}, hidden, dtype=dtype).train(training)
    generator = torch.Generator().manual_seed(tokens)
    x = torch.randn(tokens, hidden, dtype=dtype, generator=generator)
    grad = torch.randn(tokens, hidden, dtype=dtype, generator=generator)
    kwargs = {} if mask is None else {"token_mask": mask}
    torch.manual_seed(0)  # forward-time draws (the balanced router's noise) are the same for both
    expected = forward_backward(reference, x, grad, **kwargs)
    torch.manual_seed(0)
    actual = forward_backward(other, x, grad, **kwargs)
    assert_close(actual[0], expected[0], dtype, "output")
    assert_close(actual[1], expected[1], dtype, "input gradient")
    for name in expected[2]:
        assert_close(actual[2][name], expected[2][name], dtype, name)
    assert torch.equal(other.stats["tokens_per_expert"], reference.stats["tokens_per_expert"])
    return other


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("tokens", [1, 5, 97])
@pytest.mark.parametrize("variant", VARIANTS)
def test_same_function_as_looped(variant, tokens, dtype):
    compare(variant, tokens=tokens, dtype=dtype)


def test_the_fp32_path_is_grouped_gemm_and_fp64_is_padded():
    assert grouped_mm_runs("cpu", torch.float32)
    assert not grouped_mm_runs("cpu", torch.float64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
def test_experts_without_tokens(dtype):
    # 3 tokens, top-1 of 7 routed experts: at least 4 experts receive nothing; their gradients are zero.
    data = {**BASE, "experts_per_token": 1}
    layer = compare("dropless", tokens=3, dtype=dtype, data=data)
    idle = layer.stats["tokens_per_expert"] == 0
    assert idle.sum() >= 4
    layer.zero_grad(set_to_none=True)
    layer(torch.randn(3, 16, dtype=dtype)).sum().backward()
    assert layer.experts.layer_1.weight.grad[layer.stats["tokens_per_expert"] == 0].abs().max() == 0


def test_bfloat16_grouped_gemm_matches_looped():
    data = {**BASE, "auxiliary_loss_coefficient": 0.0, "z_loss_coefficient": 0.0}
    reference = build({**data, "implementation": "looped"}, 16, dtype=torch.bfloat16).eval()
    other = build({**data, "implementation": "dropless"}, 16, dtype=torch.bfloat16).eval()
    x = torch.randn(33, 16, dtype=torch.bfloat16)
    # bfloat16 keeps 8 bits: the sum order differs, so 2^-6 relative.
    error = (other(x).float() - reference(x).float()).abs().max() / reference(x).float().abs().max()
    assert error < 2**-6


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("intermediate_size", [8, 16, 24], ids=["narrow", "square", "wide"])
def test_routing_weight_on_either_side_of_layer_2(intermediate_size, dtype):
    # dropless scales layer_2's input when intermediate < hidden (16), else its output; looped always its output.
    compare("dropless", tokens=29, dtype=dtype, data={**BASE, "intermediate_size": intermediate_size})


# The routing families of issue 6, each with the features that touch execution: capacity drops (dropped
# rows are cut before the grouped GEMM), the weight on the expert input, gpt_oss_glu with expert and
# router biases, a gated shared expert of its own width, the balanced router.
FAMILIES = {
    "deepseek-v3": {
        "experts": 17, "shared_experts": 1, "experts_per_token": 4, "routing": "aux_free", "router_score_function": "sigmoid",
        "expert_groups": 4, "expert_groups_per_token": 2, "routed_scaling_factor": 2.5, "automatic_bias_update": True,
        "sequence_auxiliary_loss_coefficient": 0.01, "add_linear_biases": False, "auxiliary_loss_coefficient": 0.0,
    },
    "capacity-probability": {"capacity_factor": 0.75},
    "capacity-position": {"capacity_factor": 0.9, "drop_policy": "position"},
    "llama-4": {"experts_per_token": 1, "router_score_function": "sigmoid", "router_weight_on_input": True},
    "gpt-oss": {"shared_experts": 0, "activation": "gpt_oss_glu", "activation_limit": 1.0, "router_bias": {"enabled": True}},
    "qwen2-moe": {"shared_expert_intermediate_size": 20, "shared_expert_gate": {"enabled": True}, "normalize_expert_weights": False},
    "balanced": {"routing": "balanced", "balanced_routing_noise": 0.3, "auxiliary_loss_coefficient": 0.0},
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("family", FAMILIES)
def test_routing_families_same_function_as_looped(family, variant, dtype):
    layer = compare(variant, tokens=37, dtype=dtype, data={**BASE, **FAMILIES[family]})
    if "capacity_factor" in FAMILIES[family]:
        assert layer.stats["dropped_tokens"] > 0


def test_capacity_drops_rows_before_the_padded_gemm():
    # float64 takes the padded path: its buffers hold at most `capacity` rows per expert, not T.
    layer = compare("dropless-dynamic", tokens=40, dtype=torch.float64, data={**BASE, "capacity_factor": 0.5})
    assert layer.capacity(40) == 9  # ⌈0.5 · 40 · 3 / 7⌉
    assert layer.stats["dropped_tokens"] > 0
