"""Parameter / FLOP / memory counts, against numbers computed independently here."""

from __future__ import annotations

from fastmoe_cfg.schemas import MLPConfig, MoEMLPConfig
from fastmoe_cfg.schemas.counts import count_layer


def test_mixtral_layer() -> None:
    config = MoEMLPConfig(experts=8, experts_per_token=2, gated=True, intermediate_size=14336, add_linear_biases=False)
    counts = count_layer(config, 4096)
    expert = 3 * 4096 * 14336  # gate, up, down
    router = 8 * 4096
    assert counts.parameters_per_expert == expert == 176_160_768
    assert counts.total_parameters == router + 8 * expert == 1_409_318_912
    assert counts.active_parameters == router + 2 * expert == 352_354_304
    assert counts.flops_per_token == 2 * (router + 2 * expert)
    assert counts.bytes_per_expert == 2 * expert


def test_a_norm_without_weight_counts_no_weight() -> None:
    hidden = 64
    base = {"experts": 4, "experts_per_token": 2, "intermediate_size": 32}
    plain = count_layer(MoEMLPConfig(**base), hidden).total_parameters
    weightless = {"type": "rms_norm", "weight": {"enabled": False}}
    assert count_layer(MoEMLPConfig(**base, router_normalization=weightless, pre_norm=weightless), hidden).total_parameters == plain
    layer_norm = {"type": "layer_norm", "weight": {"enabled": False}}
    assert count_layer(MoEMLPConfig(**base, post_norm=layer_norm), hidden).total_parameters == plain + hidden  # the bias


def test_shared_experts_biases_norms_and_scales() -> None:
    hidden, inter = 64, 32
    config = MoEMLPConfig(
        experts=6, experts_per_token=2, shared_experts=2, intermediate_size=inter, gated=False,
        pre_norm={"type": "rms_norm"}, post_norm={"type": "layer_norm"},
        router_normalization={"type": "rms_norm"}, router_scale={"enabled": True},
        router_per_expert_scale={"enabled": True}, layer_2={"bias": {"enabled": False}},
    )
    counts = count_layer(config, hidden, "fp32")
    routed = 4
    expert = hidden * inter + inter + inter * hidden  # layer_1 weight + bias, layer_2 weight (no bias)
    shared = hidden * 2 * inter + 2 * inter + 2 * inter * hidden  # one MLP of width 2·inter
    router = routed * hidden + hidden + hidden + routed  # linear, rms weight, router_scale, per-expert scale
    norms = hidden + 2 * hidden
    assert counts.total_parameters == router + routed * expert + shared + norms
    assert counts.active_parameters == router + 2 * expert + shared + norms
    assert counts.flops_per_token == 2 * (routed * hidden + 2 * 2 * hidden * inter + 2 * 2 * inter * hidden)
    assert counts.bytes_per_expert == 4 * expert


def test_dense() -> None:
    counts = count_layer(MLPConfig(intermediate_size=11008, gated=True, add_linear_biases=False), 4096)
    assert counts.total_parameters == counts.active_parameters == 3 * 4096 * 11008
    assert counts.flops_per_token == 2 * 3 * 4096 * 11008
    assert counts.parameters_per_expert is None and counts.bytes_per_expert is None
    with_bias = count_layer(MLPConfig(intermediate_size=10), 4)
    assert with_bias.total_parameters == 4 * 10 + 10 + 10 * 4 + 4


def test_shared_expert_width_gate_and_router_bias() -> None:
    # Qwen2-MoE-style shared experts (own width, sigmoid gate) and a GPT-OSS-style router bias, biases on.
    config = MoEMLPConfig(
        experts=7, shared_experts=2, experts_per_token=2, intermediate_size=8, gated=True,
        shared_expert_intermediate_size=24, shared_expert_gate={"enabled": True}, router_bias={"enabled": True},
        pre_norm={"type": "rms_norm"},
    )
    counts = count_layer(config, 16, "fp32")
    # Routed expert: layer_1 16 -> 2·8 (weight 256, bias 16), layer_2 8 -> 16 (weight 128, bias 16).
    assert counts.parameters_per_expert == 256 + 16 + 128 + 16 == 416
    # One shared MLP of width 24 (not 2 · 8): layer_1 16 -> 48 (768 + 48), layer_2 24 -> 16 (384 + 16); gate vector 16.
    assert counts.shared_parameters == 768 + 48 + 384 + 16 + 16 == 1232
    # Router: 16 -> 5 routed experts (80) and its bias (5).
    assert counts.router_parameters == 80 + 5 == 85
    assert counts.norm_parameters == 16
    assert counts.total_parameters == 85 + 5 * 416 + 1232 + 16 == 3413
    assert counts.active_parameters == 85 + 2 * 416 + 1232 + 16 == 2165
    # FLOPs: 2 × multiply-adds of router (80), 2 experts (2 · 384), shared MLP (1152) and gate (16); biases not counted.
    assert counts.flops_per_token == 2 * (80 + 2 * 384 + 1152 + 16) == 4032
    assert counts.bytes_per_expert == 4 * 416


def test_shared_width_defaults_to_shared_experts_times_intermediate_size() -> None:
    config = MoEMLPConfig(experts=4, shared_experts=2, intermediate_size=8, add_linear_biases=False)
    assert count_layer(config, 16).shared_parameters == 2 * 16 * 16  # one MLP of width 2 · 8
    assert count_layer(MoEMLPConfig(experts=4), 16).shared_parameters == 0
