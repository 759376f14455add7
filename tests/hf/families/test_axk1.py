"""A.X-K1 (`axk1`): `AXK1MoE`, DeepSeek-V3's block and an RMSNorm of its output, against transformers: parity, export,
counts at a representative size, the MoE layers of the legacy first_k_dense_replace / moe_layer_freq."""

from __future__ import annotations

import pytest
import torch

from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

from transformers.models.axk1.modeling_axk1 import AXK1MLP, AXK1MoE  # noqa: E402


@pytest.fixture(scope="module")
def family():
    """16 routed experts in 4 groups (keep 2), top-4, one shared expert, × 2.5; its post_mlp_layernorm's weight drawn."""
    config = transformers.AXK1Config(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=1,
        num_experts_per_tok=4, n_group=4, topk_group=2, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
    )
    family = small_block(AXK1MoE, config, name="axk1", k=4)
    with torch.no_grad():
        family.block.post_mlp_layernorm.weight.add_(1.0)  # around 1, as trained norms are
    return family


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    return transformers.AXK1Config(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(1, AXK1MoE), (0, AXK1MLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("axk1")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    conversion = convert(published("axk1"))
    assert conversion.moe_layers == tuple(range(1, 61))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (193, 1, 8, 2048)
    assert (config.expert_groups, config.expert_groups_per_token, config.routed_scaling_factor) == (8, 4, 2.5)
    assert config.post_norm.type == "rms_norm" and config.post_norm.epsilon == 1e-6


def test_the_legacy_layer_keys_place_the_moe_layers_as_transformers():
    data = {**published("axk1"), "num_hidden_layers": 6, "first_k_dense_replace": 2, "moe_layer_freq": 2}
    expected = tuple(index for index, kind in enumerate(hf_config(data).mlp_layer_types) if kind == "sparse")
    assert convert(data).moe_layers == expected == (2, 4)
    assert convert(data, 3).config.type == "mlp"
