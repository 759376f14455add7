"""dots3 note (`dots3_note`, its text model `dots3_note_text`): `Dots3NoteTextMoE`, DeepSeek-V3's block with its own
shared width, against transformers: parity through the multimodal config, export, counts at a representative size,
the published top-level layout and the legacy layer keys."""

from __future__ import annotations

import pytest

from fastmoe_cfg.hf import convert
from tests.hf.families.deepseek_like import HIDDEN, assert_counts, published, small_block
from tests.hf.parity import IMPLEMENTATIONS, TOKENS, check_block, check_export, transformers

from transformers.models.dots3_note.modeling_dots3_note import Dots3NoteTextMLP, Dots3NoteTextMoE  # noqa: E402

ADAPTERS = {"vision_config": {"adapter_out_dim": HIDDEN}, "audio_config": {"adapter_out_dim": HIDDEN}}


@pytest.fixture(scope="module")
def family():
    """16 routed experts in 4 groups (keep 2), top-4, two shared experts of 12 each (not moe_intermediate_size), × 1.5;
    imported through the multimodal wrapper (text_config) and exported by its name."""
    text = transformers.Dots3NoteTextConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=2,
        shared_experts_intermediate_size=12, num_experts_per_tok=4, n_group=4, topk_group=2, routed_scaling_factor=1.5,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
    )
    wrapper = transformers.Dots3NoteConfig(text_config=text.to_dict(), **ADAPTERS)
    return small_block(Dots3NoteTextMoE, text, name="dots3_note", k=4, hf_config=wrapper)


@pytest.mark.parametrize("tokens", TOKENS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_equals_transformers(family, implementation, tokens):
    check_block(family, implementation, tokens)


def test_export_is_the_hf_state_dict(family):
    check_export(family)


def hf_config(data: dict):
    """The text config transformers reads from a top-level (published) dots3_note config.json."""
    return transformers.Dots3NoteConfig(**{key: value for key, value in data.items() if key != "model_type"}).text_config


@pytest.mark.parametrize("layer, block_class", [(1, Dots3NoteTextMoE), (0, Dots3NoteTextMLP)])
def test_counts_equal_transformers_blocks(layer, block_class):
    data = published("dots3_note")
    assert_counts(data, layer, block_class, hf_config(data))


def test_the_top_level_layout_and_text_config_convert_alike():
    data = published("dots3_note")
    conversion = convert(data)
    assert conversion.family == "dots3_note" and conversion.moe_layers == tuple(range(1, 46))
    config = conversion.config
    assert (config.experts, config.shared_experts, config.experts_per_token, config.intermediate_size) == (257, 1, 8, 1536)
    assert (config.expert_groups, config.routed_scaling_factor, config.shared_intermediate_size()) == (1, 1.0, 1536)
    nested = transformers.Dots3NoteConfig(text_config=hf_config(data).to_dict()).to_dict()
    assert convert(nested).family == "dots3_note_text" and convert(nested).config == config


def test_the_legacy_layer_keys_place_the_moe_layers_as_transformers():
    data = {**published("dots3_note"), "num_hidden_layers": 5, "first_k_dense_replace": 1, "moe_layer_freq": [1, 1, 0, 1, 0]}
    expected = tuple(index for index, kind in enumerate(hf_config(data).mlp_layer_types) if kind == "sparse")
    assert convert(data).moe_layers == expected == (1, 3)
