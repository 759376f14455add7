"""`type: hybrid_moe`: the layer (names, masks, lr scales, meta init, counts) and its parity with transformers'
Gemma-4 decoder-layer feed-forward (both branches and all five norms), per layer for use_double_wide_mlp.

The Gemma-4 reference is transformers' own `Gemma4TextDecoderLayer.forward` with its attention replaced by
zero: the layer then returns x + feed_forward(x), so feed_forward is read off the real code, not a transcription.
Weights are drawn by hand (no downloads); float32, CPU, eval mode. Tolerances as tests/hf/test_import.py: max abs
difference / max abs reference 1e-5 for outputs, 1e-4 for input gradients (Gemma4RMSNorm computes in float32 whatever
the input dtype, so float64 would not be tighter).
"""

from __future__ import annotations

import pytest
import torch

from fastmoe_cfg.hf import config_from_hf, export_state_dict, import_moe_block
from fastmoe_cfg.schemas import HybridMoEMLPConfig, MLPBaseConfig
from fastmoe_cfg.schemas.counts import count_layer

HIDDEN = 16
MIN_MARGIN = 1e-3  # the k-th and (k+1)-th routing probabilities of every token differ by more: no rounding flips a choice

HYBRID = {
    "type": "hybrid_moe",
    "pre_norm": {"type": "rms_norm"},
    "post_norm": {"type": "layer_norm"},
    "lr_scale": 0.5,
    "dense": {"intermediate_size": 12, "gated": True, "pre_norm": {"type": "rms_norm", "lr_scale": 4.0}, "post_norm": {"type": "rms_norm"}},
    "routed": {
        "intermediate_size": 8, "gated": True, "experts": 4, "experts_per_token": 2, "lr_scale": 2.0,
        "router_normalization": {"type": "fixed_rms_norm"}, "post_norm": {"type": "rms_norm"},
    },
}


def hybrid_config(**changes) -> HybridMoEMLPConfig:
    return MLPBaseConfig.from_dict({**HYBRID, **changes})


def test_parameters_are_named_by_branch_and_counted_exactly() -> None:
    config = hybrid_config()
    layer = config.build(HIDDEN)
    names = [name for name, _ in layer.named_parameters()]
    assert names == [
        "pre_norm.weight",
        "dense.pre_norm.weight", "dense.layer_1.weight", "dense.layer_1.bias", "dense.layer_2.weight", "dense.layer_2.bias", "dense.post_norm.weight",
        "routed.router.weight", "routed.experts.layer_1.weight", "routed.experts.layer_1.bias", "routed.experts.layer_2.weight",
        "routed.experts.layer_2.bias", "routed.post_norm.weight",
        "post_norm.weight", "post_norm.bias",
    ]
    counts = count_layer(config, HIDDEN)
    assert counts.total_parameters == sum(parameter.numel() for parameter in layer.parameters())
    dense = sum(parameter.numel() for name, parameter in layer.named_parameters() if name.startswith("dense."))
    expert = sum(parameter[0].numel() for name, parameter in layer.named_parameters() if name.startswith("routed.experts."))
    assert counts.dense_parameters == dense and counts.parameters_per_expert == expert
    assert counts.active_parameters == counts.total_parameters - 2 * expert  # 2 of the 4 experts are idle per token
    # FLOPs: 2 × the multiply-adds of dense (gated: 3 matrices), router, k experts
    assert counts.flops_per_token == 2 * (3 * HIDDEN * 12) + 2 * HIDDEN * 4 + 2 * 2 * (3 * HIDDEN * 8)


def test_lr_scales_multiply_down_the_tree() -> None:
    scales = hybrid_config().build(HIDDEN).lr_scales
    assert scales["pre_norm.weight"] == 0.5 and scales["post_norm.bias"] == 0.5
    assert scales["dense.layer_1.weight"] == 0.5 and scales["dense.pre_norm.weight"] == 0.5 * 4.0
    assert scales["routed.router.weight"] == 0.5 * 2.0 and scales["routed.experts.layer_2.bias"] == 0.5 * 2.0
    assert set(scales) == {name for name, _ in hybrid_config().build(HIDDEN).named_parameters()}


def test_masked_tokens_get_zero_rows_and_zero_gradients_and_the_routed_stats_are_exposed() -> None:
    torch.manual_seed(0)
    layer = hybrid_config().build(HIDDEN)
    x = torch.randn(2, 3, HIDDEN, requires_grad=True)
    mask = torch.tensor([[True, True, False], [False, True, True]])
    y = layer(x, mask)
    y.square().sum().backward()
    assert y.shape == x.shape and torch.equal(y[~mask], torch.zeros(2, HIDDEN)) and torch.equal(x.grad[~mask], torch.zeros(2, HIDDEN))
    assert layer.stats is layer.routed.stats and int(layer.stats["tokens_per_expert"].sum()) == 4 * 2  # 4 real tokens, k = 2
    layer.aux_loss_scale = 0.25
    layer.inject_aux_losses = False
    assert layer.routed.aux_loss_scale == 0.25 and not layer.routed.inject_aux_losses
    assert layer.applied_losses == layer.routed.applied_losses


def test_a_layer_built_on_meta_and_reset_equals_a_direct_build() -> None:
    config = hybrid_config()
    torch.manual_seed(3)
    direct = config.build(HIDDEN)
    with torch.device("meta"):
        meta = config.build(HIDDEN)
    meta = meta.to_empty(device="cpu")
    torch.manual_seed(3)
    meta.reset_parameters()
    assert all(torch.equal(meta.state_dict()[name], tensor) for name, tensor in direct.state_dict().items())


@pytest.mark.parametrize("implementation", ["looped", "dropless"])
def test_the_layer_equals_the_float64_reference(implementation: str) -> None:
    """Outputs and the gradients of the input and of every parameter, against tests/layers/reference.py's hybrid."""
    from tests.layers import reference

    routed = {  # coefficient 0: the injected load-balancing gradient is by design not the output's derivative (DESIGN.md §4)
        **HYBRID["routed"], "implementation": implementation, "router_normalization": {"type": "rms_norm"}, "activation": "silu",
        "auxiliary_loss_coefficient": 0.0,
    }
    config = hybrid_config(routed=routed, dense={**HYBRID["dense"], "activation": "silu"})
    torch.manual_seed(0)
    layer = config.build(HIDDEN, dtype=torch.float64)
    with torch.no_grad():  # norm weights and biases away from their initial 1 and 0
        for name, parameter in layer.named_parameters():
            if "norm" in name:
                parameter.add_(torch.randn_like(parameter) * 0.3)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(7, HIDDEN, dtype=torch.float64, generator=generator, requires_grad=True)
    grad = torch.randn(7, HIDDEN, dtype=torch.float64, generator=generator)
    (layer(x) * grad).sum().backward()
    params = reference.leaf_parameters(layer)
    x_ref = x.detach().clone().requires_grad_()
    rms, layer_norm = reference.Norm("rms_norm"), reference.Norm("layer_norm")
    out_ref = reference.hybrid(
        params,
        reference.Spec(activation="silu", gated=True, pre_norm=rms, post_norm=rms),
        reference.Spec(activation="silu", gated=True, experts_per_token=2, router_normalization=rms, post_norm=rms),
        x_ref, pre_norm=rms, post_norm=layer_norm,
    )
    (out_ref * grad).sum().backward()
    tolerance = {"rtol": 1e-9, "atol": 1e-10}  # float64: only the summation order differs
    torch.testing.assert_close(layer(x), out_ref, **tolerance)
    torch.testing.assert_close(x.grad, x_ref.grad, **tolerance)
    for name, parameter in layer.named_parameters():
        torch.testing.assert_close(parameter.grad, params[name].grad, **tolerance, msg=lambda m, name=name: f"{name}: {m}")


def test_fast_llm_normalization_and_activation_fields_act() -> None:
    """fixed_rms_norm is rms_norm without weight; a normalization's lr_scale multiplies its parameters'; sigmoid is Fast-LLM's."""
    torch.manual_seed(0)
    x = torch.randn(5, HIDDEN)
    fixed = MLPBaseConfig.from_dict({"pre_norm": {"type": "fixed_rms_norm", "epsilon": 1e-6}, "intermediate_size": 4})
    weightless = MLPBaseConfig.from_dict({"pre_norm": {"type": "rms_norm", "epsilon": 1e-6, "weight": {"enabled": False}}, "intermediate_size": 4})
    torch.manual_seed(1)
    a = fixed.build(HIDDEN)
    torch.manual_seed(1)
    b = weightless.build(HIDDEN)
    assert a.pre_norm.weight is None and torch.equal(a(x), b(x))
    scaled = MLPBaseConfig.from_dict({"lr_scale": 0.5, "post_norm": {"type": "layer_norm", "lr_scale": 3.0, "bias": {"lr_scale": 2.0}}})
    scales = scaled.build(HIDDEN).lr_scales
    assert scales["post_norm.weight"] == 0.5 * 3.0 and scales["post_norm.bias"] == 0.5 * 3.0 * 2.0
    layer = MLPBaseConfig.from_dict({"activation": "sigmoid", "intermediate_size": 4}).build(HIDDEN)
    assert torch.allclose(layer(x), layer.layer_2(torch.sigmoid(layer.layer_1(x))))


# --- Gemma-4 ----------------------------------------------------------------------------------------------------

transformers = pytest.importorskip("transformers", reason="the Gemma-4 parity test needs transformers")


def gemma4_config():
    """Two decoder layers; the second reuses the first's KV cache (num_kv_shared_layers 1), so with
    use_double_wide_mlp its dense MLP is twice as wide."""
    text = transformers.Gemma4TextConfig(
        hidden_size=HIDDEN, num_hidden_layers=2, enable_moe_block=True, num_experts=4, top_k_experts=2, moe_intermediate_size=8,
        intermediate_size=12, use_double_wide_mlp=True, num_kv_shared_layers=1, hidden_size_per_layer_input=0,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, vocab_size=32, layer_types=["full_attention"] * 2,
    )
    text._experts_implementation = "eager"
    return text


class NoAttention(torch.nn.Module):
    def forward(self, hidden_states, **kwargs):
        return torch.zeros_like(hidden_states), None


def gemma4_layer(text, index: int):
    """transformers' decoder layer with every feed-forward weight drawn (norm weights around 1, not left at 1)."""
    from transformers.models.gemma4.modeling_gemma4 import Gemma4TextDecoderLayer

    torch.manual_seed(index)
    layer = Gemma4TextDecoderLayer(text, index)
    layer.self_attn = NoAttention()
    with torch.no_grad():
        for name, parameter in layer.named_parameters():
            parameter.normal_(1.0 if "norm" in name or "scale" in name else 0.0, 0.3)
    return layer.eval()


def gemma4_feed_forward(layer, x):
    """Gemma4TextDecoderLayer.forward(x) - x: its feed-forward (attention is zero; layer_scalar is 1)."""
    return layer(x, position_embeddings=None, attention_mask=None) - x


def untied_input(layer, tokens: int) -> torch.Tensor:
    for seed in range(200):
        x = torch.randn(1, tokens, HIDDEN, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
        with torch.no_grad():
            top = layer.router(x.reshape(-1, HIDDEN))[0].topk(3, dim=-1).values
        if (top[:, 1] - top[:, 2]).min() > MIN_MARGIN:
            return x
    raise AssertionError("no seed without a near-tie")


@pytest.mark.parametrize(("index", "implementation"), [(0, "looped"), (1, "dropless")])  # both widths, both implementations
def test_imported_gemma4_feed_forward_equals_transformers(index: int, implementation: str) -> None:
    text = gemma4_config()
    hf = gemma4_layer(text, index)
    layer = import_moe_block(hf, text, layer=index, implementation=implementation)
    assert isinstance(layer.config, HybridMoEMLPConfig)
    assert layer.config.dense.intermediate_size == hf.mlp.intermediate_size == (24 if index == 1 else 12)
    x = untied_input(hf, 7)
    x_ours, x_hf = x.clone().requires_grad_(), x.clone().requires_grad_()
    ours, theirs = layer(x_ours), gemma4_feed_forward(hf, x_hf)
    grad = torch.randn_like(ours)
    (ours * grad).sum().backward()
    (theirs * grad).sum().backward()
    out_diff = (ours - theirs).abs().max().item()
    grad_diff = (x_ours.grad - x_hf.grad).abs().max().item()
    print(f"gemma4 layer {index} {implementation}: max abs diff output {out_diff:.2e} (of {theirs.abs().max():.2f}), input grad {grad_diff:.2e}")
    assert out_diff <= 1e-5 * theirs.abs().max() and grad_diff <= 1e-4 * x_hf.grad.abs().max()


def test_export_of_the_imported_feed_forward_is_the_hf_state_dict() -> None:
    text = gemma4_config()
    hf = gemma4_layer(text, 1)
    exported = export_state_dict(import_moe_block(hf, text, layer=1), "gemma4_text")
    modules = ("mlp", "pre_feedforward_layernorm", "post_feedforward_layernorm_1", "post_feedforward_layernorm",
               "router", "experts", "pre_feedforward_layernorm_2", "post_feedforward_layernorm_2")
    original = {f"{name}.{key}": value for name in modules for key, value in getattr(hf, name).state_dict().items()}
    assert set(exported) == set(original)
    assert all(torch.equal(exported[key], tensor) and exported[key].dtype == tensor.dtype for key, tensor in original.items())


def test_moe_only_imports_the_moe_branch() -> None:
    text = gemma4_config()
    config, hidden = config_from_hf(text, moe_only=True)
    assert config.type == "moe" and hidden == HIDDEN
    assert import_moe_block(gemma4_layer(text, 0), text, moe_only=True).config == config
