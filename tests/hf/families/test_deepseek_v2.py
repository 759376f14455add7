"""DeepSeek-V2 (`deepseek_v2`, `DeepseekV2Moe`): softmax top-k, greedy or group_limited_greedy (a group's score is its
max: expert_group_score max), never renormalised, × routed_scaling_factor, shared experts."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, modeling, published, small_block, softmax_route
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

DeepseekV2MLP, DeepseekV2Moe = modeling("deepseek_v2", "DeepseekV2MLP", "DeepseekV2Moe")

SMALL = {"hidden_size": HIDDEN, "moe_intermediate_size": 8, "intermediate_size": 24, "n_routed_experts": 16, "n_shared_experts": 2,
             "routed_scaling_factor": 1.5, "first_k_dense_replace": 1, "num_hidden_layers": 2, "num_attention_heads": 2}


@pytest.fixture(scope="module")
def greedy():
    config = transformers.DeepseekV2Config(**SMALL, num_experts_per_tok=4, topk_method="greedy")
    return small_block(DeepseekV2Moe, config, name="deepseek_v2", k=4, route=softmax_route)


@pytest.fixture(scope="module")
def group_limited():
    """4 groups of 4 experts, the 2 with the best max kept, top-3."""
    config = transformers.DeepseekV2Config(**SMALL, num_experts_per_tok=3, topk_method="group_limited_greedy", n_group=4, topk_group=2)
    return small_block(DeepseekV2Moe, config, name="deepseek_v2", k=3, route=softmax_route)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_greedy_block_equals_transformers(greedy, implementation, tokens):
    check_block(greedy, implementation, tokens)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_group_limited_block_equals_transformers(group_limited, implementation, tokens):
    check_block(group_limited, implementation, tokens)


def test_the_groups_are_scored_by_their_max(group_limited):
    """On these inputs, a group's top-2 sum would keep other groups for some tokens: the max is what matches."""
    import torch

    from fastmoe_cfg.hf import import_moe_block

    layer = import_moe_block(group_limited.block, group_limited.config)
    assert layer.config.expert_group_score == "max"
    x = torch.randn(64, HIDDEN, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ours = layer.route(x).experts_TK.sort(dim=-1).values
        top2 = type(layer.config).from_dict({**layer.config.to_dict(), "expert_group_score": "top2_sum"}).build(HIDDEN)
        top2.load_state_dict(layer.state_dict())
        other = top2.route(x).experts_TK.sort(dim=-1).values
        _, theirs = group_limited.route(group_limited.block, x)
    assert torch.equal(ours, theirs.sort(dim=-1).values) and not torch.equal(ours, other)


def test_export_is_the_hf_state_dict(greedy, group_limited):
    check_export(greedy)
    check_export(group_limited)


def hf_config(data: dict):
    return transformers.DeepseekV2Config(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(1, DeepseekV2Moe), (0, DeepseekV2MLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("deepseek_v2")
    assert_counts(data, layer, block_class, hf_config(data))


def test_config_json_converts():
    conversion = convert(published("deepseek_v2"))
    assert conversion.moe_layers == tuple(range(1, 60))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (162, 2, 6, 1536)
    assert (config.expert_groups, config.expert_groups_per_token, config.expert_group_score) == (8, 3, "max")
    assert (config.routing, config.router_score_function, config.normalize_expert_weights, config.routed_scaling_factor) == (
        "aux_loss", "softmax", False, 16.0
    )
    assert (config.auxiliary_loss_coefficient, config.sequence_auxiliary_loss_coefficient) == (0.0, 0.003)


def test_greedy_ignores_the_groups_and_the_settings_transformers_ignores_must_agree():
    data = {**published("deepseek_v2"), "topk_method": "greedy"}
    assert convert(data).config.expert_groups == 1
    assert convert({**data, "seq_aux": False}).config.auxiliary_loss_coefficient == 0.003 / 6
    for key, value, message in (
        ("norm_topk_prob", True, "norm_topk_prob: true cannot be converted: transformers' DeepSeek-V2 never renormalises"),
        ("topk_method", "noaux_tc", "topk_method: 'noaux_tc' cannot be converted"),
        ("scoring_func", "sigmoid", "scoring_func: string .sigmoid. cannot be converted: DeepSeek-V2 scores with softmax"),
        ("mlp_bias", True, "mlp_bias: true cannot be converted"),
    ):
        with pytest.raises(ConfigError, match=message):
            convert({**data, key: value})
    with pytest.raises(ConfigError, match="n_group: missing"):
        convert({**published("deepseek_v2"), "n_group": None})
    assert convert({**data, "mlp_bias": True}, 0).config.add_linear_biases is True
