"""DiffusionGemma (`diffusion_gemma`, its text model `diffusion_gemma_text`): the feed-forward of its decoder and
encoder layers, Gemma-4's, against transformers: the MoE branch (parity, export), the whole feed-forward as hybrid_moe,
the encoder's layer, counts at a representative size."""

from __future__ import annotations

import pytest
import torch

from fastmoe_cfg.hf import convert, import_moe_block
from fastmoe_cfg.schemas.counts import count_layer
from tests.hf.families.deepseek_like import published
from tests.hf.parity import HIDDEN, IMPLEMENTATIONS, TOKENS, Family, check_block, check_export, eager, filled, relative_error, transformers
from tests.hf.test_import import GEMMA4_MOE, gemma4_moe_branch

from transformers.models.diffusion_gemma.modeling_diffusion_gemma import (  # noqa: E402
    DiffusionGemmaDecoderTextLayer,
    DiffusionGemmaEncoderTextLayer,
    DiffusionGemmaText4MLP,
    DiffusionGemmaTextExperts,
    DiffusionGemmaTextRouter,
)


def route(layer, x_TH):
    probabilities, _, experts = layer.router(x_TH)
    return probabilities, experts


def state(layer):
    return {f"{name}.{key}": value for name in GEMMA4_MOE for key, value in getattr(layer, name).state_dict().items()}


def filled_layer(layer_class, text):
    """Every parameter drawn; the norms' and router scales' weights around 1, as trained ones are."""
    layer = filled(layer_class(text, 0))
    with torch.no_grad():
        for module in (layer.pre_feedforward_layernorm, layer.post_feedforward_layernorm, layer.post_feedforward_layernorm_1,
                       layer.pre_feedforward_layernorm_2, layer.post_feedforward_layernorm_2):
            module.weight.add_(1)
        layer.router.scale.add_(1)
        layer.router.per_expert_scale.add_(1)
    return layer


@pytest.fixture(scope="module")
def family() -> Family:
    """8 experts, top-2; the decoder's layer, imported through the multimodal wrapper (text_config)."""
    text = eager(transformers.DiffusionGemmaTextConfig(
        hidden_size=HIDDEN, num_hidden_layers=2, num_experts=8, top_k_experts=2, moe_intermediate_size=8, intermediate_size=24,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8, vocab_size=32, layer_types=["full_attention"] * 2,
    ))
    config = transformers.DiffusionGemmaConfig(text_config=text.to_dict())
    return Family("diffusion_gemma", config, filled_layer(DiffusionGemmaDecoderTextLayer, text), 2, gemma4_moe_branch, route, state, moe_only=True)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_the_moe_branch_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def feed_forward(layer, x):
    """The layers' forward from the residual x to the sum before the residual add (transformers 5.x)."""
    dense = layer.post_feedforward_layernorm_1(layer.mlp(layer.pre_feedforward_layernorm(x)))
    return layer.post_feedforward_layernorm(dense + gemma4_moe_branch(layer, x))


def test_the_whole_feed_forward_of_decoder_and_encoder_layers(family):
    x = torch.randn(1, 13, HIDDEN, generator=torch.Generator().manual_seed(3))
    text = family.config.text_config
    for layer in (family.block, filled_layer(DiffusionGemmaEncoderTextLayer, text)):
        ours = import_moe_block(layer, family.config)
        assert ours.config.type == "hybrid_moe"
        with torch.no_grad():
            assert relative_error(ours(x), feed_forward(layer, x)) <= 1e-5


def test_counts_equal_transformers_modules():
    data = published("diffusion_gemma")
    text = transformers.DiffusionGemmaConfig(**{key: value for key, value in data.items() if key != "model_type"}).text_config
    with torch.device("meta"):
        modules = (DiffusionGemmaTextRouter(text), DiffusionGemmaTextExperts(text))
        dense = DiffusionGemmaText4MLP(text, 0)
    hidden = text.hidden_size
    moe = sum(p.numel() for module in modules for p in module.parameters()) + 2 * hidden  # + pre_ / post_feedforward_layernorm_2
    assert count_layer(convert(data, moe_only=True).config, hidden).total_parameters == moe
    assert count_layer(convert(data).config, hidden).total_parameters == moe + sum(p.numel() for p in dense.parameters()) + 3 * hidden


def test_config_json_converts():
    conversion = convert(published("diffusion_gemma"))
    assert conversion.family == "diffusion_gemma_text" and conversion.moe_layers == tuple(range(30))
    config = conversion.config
    assert (config.dense.intermediate_size, config.routed.experts, config.routed.experts_per_token, config.routed.intermediate_size) == (2112, 128, 8, 704)
    assert config.routed.router_normalization.type == "fixed_rms_norm" and config.routed.activation == "gelu"
