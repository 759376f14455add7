"""DeepSeek-V3 (`DeepseekV3MoE`; its small block's builder: tests/hf/test_import.py), Kimi-K2 (`kimi_k2`, read as
DeepSeek-V3: parity against `DeepseekV3MoE`) and Kimi-K2.5 (`kimi_k25`, its text model under `text_config`)."""

from __future__ import annotations

import pytest

from fastmoe_cfg.hf import convert, export_state_dict, import_moe_block
from tests.hf.families.deepseek_like import HIDDEN, as_config_json, assert_counts, modeling, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

DeepseekV3MLP, DeepseekV3MoE = modeling("deepseek_v3", "DeepseekV3MLP", "DeepseekV3MoE")

KIMI_SMALL = {
    "hidden_size": HIDDEN, "moe_intermediate_size": 8, "intermediate_size": 24, "n_routed_experts": 16, "n_shared_experts": 1,
    "num_experts_per_tok": 4, "n_group": 1, "topk_group": 1, "routed_scaling_factor": 2.827, "norm_topk_prob": True,
    "first_k_dense_replace": 1, "num_hidden_layers": 2,
}


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_deepseek_v3_block_equals_hugging_face(implementation, tokens):
    from tests.hf.test_import import deepseek_v3

    check_block(deepseek_v3(), implementation, tokens)


def test_deepseek_v3_export_is_the_hf_state_dict():
    from tests.hf.test_import import deepseek_v3

    check_export(deepseek_v3())


@pytest.fixture(scope="module")
def kimi_k2():
    """Kimi-K2's routing (no groups, × 2.827), read from a config.json dict whose model_type is kimi_k2."""
    config = transformers.DeepseekV3Config(**KIMI_SMALL)
    return small_block(DeepseekV3MoE, config, name="kimi_k2", k=4, hf_config=as_config_json(config, "kimi_k2"))


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_kimi_k2_block_equals_deepseek_v3_moe(kimi_k2, implementation, tokens):
    check_block(kimi_k2, implementation, tokens)


def test_kimi_k2_export_is_the_hf_state_dict(kimi_k2):
    check_export(kimi_k2)


def test_kimi_k25_imports_its_text_model(kimi_k2):
    """The multimodal wrapper: the MoE block of its text_config (model_type kimi_k2 inside), exported by either name."""
    outer = {"model_type": "kimi_k25", "text_config": kimi_k2.config, "vision_config": {"hidden_size": 32}}
    wrapped = type(kimi_k2)(**{**vars(kimi_k2), "name": "kimi_k25", "config": outer})
    check_block(wrapped, "dropless", 13)
    check_export(wrapped)
    layer = import_moe_block(kimi_k2.block, transformers.Kimi_K25Config(text_config=kimi_k2.config))  # transformers' object
    assert set(export_state_dict(layer, "kimi_k2")) == set(kimi_k2.block.state_dict())


def text_config(data: dict):
    return transformers.DeepseekV3Config(**{key: value for key, value in data.items() if key != "model_type"})


@pytest.mark.parametrize("layer, block_class", [(1, DeepseekV3MoE), (0, DeepseekV3MLP)])
def test_kimi_k2_counts_equal_transformers_blocks(layer, block_class):
    data = published("kimi_k2")
    assert_counts(data, layer, block_class, text_config(data))


def test_kimi_k2_config_json_converts():
    conversion = convert(published("kimi_k2"))
    assert conversion.family == "kimi_k2" and conversion.moe_layers == tuple(range(1, 61)) and conversion.layer == 1
    assert conversion.config.experts == 385 and conversion.config.shared_experts == 1 and conversion.config.experts_per_token == 8
    assert conversion.config.intermediate_size == 2048 and conversion.config.expert_groups == 1
    assert conversion.config.routed_scaling_factor == 2.827 and conversion.config.normalize_expert_weights is True
    assert conversion.config.routing == "aux_free" and conversion.config.router_score_function == "sigmoid"
    assert conversion.quantization["quant_method"] == "fp8"
    assert convert(published("kimi_k2"), 0).config.intermediate_size == 18432


def test_kimi_k25_config_json_converts_as_its_text_model():
    data = published("kimi_k25")
    conversion = convert(data)
    assert conversion.family == "kimi_k2" and conversion.quantization["quant_method"] == "compressed-tensors"  # in text_config
    assert conversion.config == convert(data["text_config"]).config == convert(published("kimi_k2")).config
    import json

    hf_object = transformers.Kimi_K25Config(**{key: value for key, value in data.items() if key != "model_type"})
    assert hf_object.text_config.model_type == "deepseek_v3"  # transformers reads kimi_k2 as deepseek_v3
    assert convert(json.loads(hf_object.to_json_string())).config == conversion.config
