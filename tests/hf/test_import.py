"""`import_moe_block` and `export_state_dict` against transformers' own MoE blocks (test-only dependency): the
builders of the first seven families' small blocks, and what import and export check. The harness and its
tolerances: tests/hf/parity.py; each family's parity test: tests/hf/families/test_<family>.py.
"""

from __future__ import annotations

import json

import pytest
import torch

from fastmoe_cfg.hf import config_from_hf, export_state_dict, import_moe_block
from tests.hf.parity import (
    HIDDEN,
    Family,
    block_output,
    eager,
    filled,
    gate_route,
    relative_error,
    transformers,
    untied_input,
    whole_state,
)


def mixtral() -> Family:
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    config = eager(transformers.MixtralConfig(hidden_size=HIDDEN, intermediate_size=8, num_local_experts=8, num_experts_per_tok=2, num_hidden_layers=2))
    return Family("mixtral", config, filled(MixtralSparseMoeBlock(config)), 2, block_output, gate_route(), whole_state)


def qwen2_moe() -> Family:
    """Layer 0 is dense (mlp_only_layers): the import takes the first MoE layer's config."""
    from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeSparseMoeBlock

    config = eager(transformers.Qwen2MoeConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, shared_expert_intermediate_size=12, num_experts=8, num_experts_per_tok=2,
        norm_topk_prob=False, num_hidden_layers=2, mlp_only_layers=[0], intermediate_size=24,
    ))
    return Family("qwen2_moe", config, filled(Qwen2MoeSparseMoeBlock(config)), 2, block_output, gate_route(), whole_state)


def qwen3_moe() -> Family:
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    config = eager(transformers.Qwen3MoeConfig(
        hidden_size=HIDDEN, moe_intermediate_size=8, num_experts=8, num_experts_per_tok=2, norm_topk_prob=True, num_hidden_layers=2,
    ))
    return Family("qwen3_moe", config, filled(Qwen3MoeSparseMoeBlock(config)), 2, block_output, gate_route(), whole_state)


def olmoe() -> Family:
    from transformers.models.olmoe.modeling_olmoe import OlmoeSparseMoeBlock

    config = eager(transformers.OlmoeConfig(
        hidden_size=HIDDEN, intermediate_size=8, num_experts=8, num_experts_per_tok=2, norm_topk_prob=False, num_hidden_layers=2,
    ))
    return Family("olmoe", config, filled(OlmoeSparseMoeBlock(config)), 2, block_output, gate_route(), whole_state)


def deepseek_v3() -> Family:
    """16 routed experts in 4 groups (keep 2), top-4, × 2.5, one shared expert; layer 0 dense."""
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE

    config = eager(transformers.DeepseekV3Config(
        hidden_size=HIDDEN, moe_intermediate_size=8, intermediate_size=24, n_routed_experts=16, n_shared_experts=1,
        num_experts_per_tok=4, n_group=4, topk_group=2, routed_scaling_factor=2.5, norm_topk_prob=True,
        first_k_dense_replace=1, num_hidden_layers=2,
    ))
    block = filled(DeepseekV3MoE(config))
    with torch.no_grad():  # a buffer: filled too, so that it changes the choice
        block.gate.e_score_correction_bias.normal_(0, 0.1)

    def route(block, x_TH):
        logits, _, experts = block.gate(x_TH)
        return logits.float().sigmoid() + block.gate.e_score_correction_bias, experts

    return Family("deepseek_v3", config, block, 4, block_output, route, whole_state)


def gpt_oss() -> Family:
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP

    config = eager(transformers.GptOssConfig(hidden_size=HIDDEN, intermediate_size=8, num_local_experts=8, num_experts_per_tok=2, num_hidden_layers=2))
    block = filled(GptOssMLP(config))
    with torch.no_grad():  # pre-activations beyond swiglu_limit, so that the clamps act
        block.experts.gate_up_proj.normal_(0, 2.5)
    return Family("gpt_oss", config, block, 2, block_output, gate_route("router"), whole_state)


GEMMA4_MOE = ("router", "experts", "pre_feedforward_layernorm_2", "post_feedforward_layernorm_2")


def gemma4_moe_branch(layer, x):
    """The MoE branch of Gemma4TextDecoderLayer.forward, line for line (transformers 5.x): the router sees the
    un-normed input, the experts pre_feedforward_layernorm_2 of it, and post_feedforward_layernorm_2 their sum."""
    flat = x.reshape(-1, x.shape[-1])
    _, top_k_weights, top_k_index = layer.router(flat)
    out = layer.experts(layer.pre_feedforward_layernorm_2(flat), top_k_index, top_k_weights)
    return layer.post_feedforward_layernorm_2(out.reshape(x.shape))


def gemma4() -> Family:
    """The hf_block is the decoder layer; norms' and router scales' weights are filled too (not left at 1)."""
    from transformers.models.gemma4.modeling_gemma4 import Gemma4TextDecoderLayer

    text = transformers.Gemma4TextConfig(
        hidden_size=HIDDEN, num_hidden_layers=2, enable_moe_block=True, num_experts=8, top_k_experts=2, moe_intermediate_size=8,
        intermediate_size=24, num_attention_heads=2, num_key_value_heads=1, head_dim=8, vocab_size=32, layer_types=["full_attention"] * 2,
    )
    layer = Gemma4TextDecoderLayer(eager(text), 0)
    filled(layer)
    with torch.no_grad():
        for module in (layer.pre_feedforward_layernorm_2, layer.post_feedforward_layernorm_2):
            module.weight.add_(1)
        layer.router.scale.add_(1)
        layer.router.per_expert_scale.add_(1)
    config = transformers.Gemma4Config(text_config=text.to_dict())  # the multimodal wrapper, as in a config.json

    def route(layer, x_TH):
        probabilities, _, experts = layer.router(x_TH)
        return probabilities, experts

    def state(layer):
        return {f"{name}.{key}": value for name in GEMMA4_MOE for key, value in getattr(layer, name).state_dict().items()}

    return Family("gemma4", config, layer, 2, gemma4_moe_branch, route, state, moe_only=True)


FAMILIES = {family.__name__: family for family in (mixtral, qwen2_moe, qwen3_moe, olmoe, deepseek_v3, gpt_oss, gemma4)}


PUBLISHED = ["mixtral_8x7b", "qwen2_57b_a14b", "qwen3_30b_a3b", "olmoe_1b_7b", "deepseek_v3", "gpt_oss_20b", "gemma4_26b_a4b"]


@pytest.mark.parametrize("name", PUBLISHED)
def test_a_published_config_json_and_the_transformers_object_loaded_from_it_convert_alike(name, tmp_path):
    """The object carries every transformers default besides the file's values, and renames some fields
    (attribute_map: num_experts -> num_local_experts, ...); both give the same config."""
    from tests.conftest import ROOT

    path = ROOT / "tests" / "data" / "hf_configs" / f"{name}.json"
    (tmp_path / "config.json").write_text(path.read_text())
    hf_object = transformers.AutoConfig.from_pretrained(tmp_path)
    data = json.loads(path.read_text())
    assert config_from_hf(hf_object) == config_from_hf(data)
    assert config_from_hf(hf_object.to_dict()) == config_from_hf(data)


def test_a_block_of_another_family_is_refused_by_name():
    qwen = qwen3_moe()
    with pytest.raises(ValueError, match="GptOssMLP is not a qwen3_moe MoE block: it has no gate.weight"):
        import_moe_block(gpt_oss().block, qwen.config)
    with pytest.raises(ValueError, match=r"experts.gate_up_proj has shape \(8, 16, 16\), experts.layer_1.weight needs \(8, 24, 16\)"):
        import_moe_block(qwen.block, transformers.Qwen3MoeConfig(hidden_size=HIDDEN, moe_intermediate_size=12, num_experts=8, num_hidden_layers=1))


def test_export_refuses_a_layer_of_another_layout():
    layer = import_moe_block(*(lambda family: (family.block, family.config))(gpt_oss()))
    with pytest.raises(ValueError, match="does not have the mixtral layout: .*no HF place for experts.layer_1.bias"):
        export_state_dict(layer, "mixtral")
    with pytest.raises(ValueError, match="unknown family 'llama'"):
        export_state_dict(layer, "llama")


def test_a_bfloat16_checkpoint_imports_with_transformers_float32_router(tmp_path):
    """DeepSeek-V3 loaded by from_pretrained in bfloat16: transformers keeps gate.weight and the correction bias in
    float32 (_keep_in_fp32_modules_strict). The imported layer keeps the same dtypes, runs on bfloat16 input like the
    block, and exports the exact tensors."""
    family = deepseek_v3()
    model = transformers.DeepseekV3ForCausalLM(
        transformers.DeepseekV3Config(**{**family.config.to_dict(), "vocab_size": 32, "num_attention_heads": 2, "num_key_value_heads": 2,
                                         "q_lora_rank": None, "kv_lora_rank": 8, "qk_rope_head_dim": 4, "qk_nope_head_dim": 4, "v_head_dim": 4})
    )
    with torch.no_grad():
        model.model.layers[1].mlp.gate.e_score_correction_bias.normal_(0, 0.1)
    model.save_pretrained(tmp_path)
    loaded = transformers.DeepseekV3ForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    block = loaded.model.layers[1].mlp.eval()
    assert block.gate.weight.dtype == torch.float32 and block.experts.gate_up_proj.dtype == torch.bfloat16
    layer = import_moe_block(block, loaded.config)
    assert layer.router.weight.dtype == torch.float32 and layer.experts.layer_1.weight.dtype == torch.bfloat16
    assert layer.router_correction_bias.dtype == torch.float32
    x = untied_input(Family("deepseek_v3", loaded.config, block, 4, block_output, family.route, whole_state), 7).to(torch.bfloat16)
    ours, theirs = layer(x), block(x)
    assert ours.dtype == theirs.dtype == torch.bfloat16
    assert relative_error(ours.float(), theirs.float()) <= 2e-2  # bfloat16 experts: rounding of the order of 2^-8
    exported, original = export_state_dict(layer, "deepseek_v3"), block.state_dict()
    assert set(exported) == set(original)
    assert all(exported[key].dtype == tensor.dtype and torch.equal(exported[key], tensor) for key, tensor in original.items())


def test_the_guide_example_runs(capsys):
    """The Python example of the Hugging Face guide (docs site) imports, compares and exports a Qwen3-MoE block."""
    import re

    from tests.conftest import ROOT

    text = (ROOT / "fastmoe_cfg" / "docs_gen" / "assets" / "hugging-face.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "hugging-face.md", "exec"), namespace)  # noqa: S102
    assert float(capsys.readouterr().out.strip().removeprefix("tensor(").split(",")[0].rstrip(")")) < 1e-5
    assert namespace["layer"].config.implementation == "dropless"


MINIMAL = {  # the fields a conversion needs; every other one is absent from the dict
    "MixtralConfig": {"model_type": "mixtral", "num_local_experts": 8, "num_experts_per_tok": 2, "intermediate_size": 64},
    "Qwen2MoeConfig": {"model_type": "qwen2_moe", "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 64, "shared_expert_intermediate_size": 96},
    "Qwen3MoeConfig": {"model_type": "qwen3_moe", "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 64},
    "OlmoeConfig": {"model_type": "olmoe", "num_experts": 8, "num_experts_per_tok": 2, "intermediate_size": 64},
    "DeepseekV3Config": {"model_type": "deepseek_v3", "n_routed_experts": 32, "num_experts_per_tok": 4, "moe_intermediate_size": 64, "intermediate_size": 96},
    "GptOssConfig": {"model_type": "gpt_oss", "num_local_experts": 8, "num_experts_per_tok": 2, "intermediate_size": 64},
    "Gemma4TextConfig": {"model_type": "gemma4_text", "enable_moe_block": True, "num_experts": 8, "top_k_experts": 2, "moe_intermediate_size": 64, "intermediate_size": 96},
}


@pytest.mark.parametrize("class_name", list(MINIMAL))
def test_absent_fields_take_the_transformers_defaults(class_name):
    """A config.json without the optional routing fields converts as transformers reads it (its class defaults:
    DeepSeek-V3's 2.5 scaling, 8 groups keep 4, one shared expert, 3 dense layers; Gemma's tanh GELU; ...)."""
    data = {**MINIMAL[class_name], "hidden_size": 32, "num_hidden_layers": 4}
    fields = {key: value for key, value in data.items() if key != "model_type"}
    hf_object = getattr(transformers, class_name)(**fields)
    ours = config_from_hf(data)
    assert ours == config_from_hf(hf_object)
    assert ours == config_from_hf(hf_object.to_dict())


def test_a_tensor_the_config_does_not_describe_is_an_error():
    """A DeepSeek-V3 block with shared experts, imported with a config that has none: its shared experts' tensors
    would be dropped, so the import refuses and names them."""
    family = deepseek_v3()
    config = family.config.to_dict() | {"n_shared_experts": 0}
    with pytest.raises(ValueError, match=r"DeepseekV3MoE has tensors a deepseek_v3 MoE layer does not have: shared_experts.down_proj.weight, "):
        import_moe_block(family.block, config)


@pytest.mark.parametrize("name", ["deepseek_v3", "gemma4"])
def test_hf_state_dict_from_a_checkpoint_mapping_equals_the_import(name):
    """hf_state_dict on the block's tensors as a plain mapping (a checkpoint's), without a module: the state dict that
    import_moe_block loads, buffers included (aux_free's training state at its initial values)."""
    from fastmoe_cfg.hf import hf_state_dict

    family = FAMILIES[name]()
    layer = import_moe_block(family.block, family.config, moe_only=family.moe_only)
    tensors = family.block.state_dict()  # Gemma-4: the whole decoder layer's, of which the feed-forward's are taken
    config, hidden, state = hf_state_dict(tensors, family.config, moe_only=family.moe_only)
    assert config == layer.config and hidden == HIDDEN
    expected = layer.state_dict()
    assert state.keys() == expected.keys()
    for key, tensor in expected.items():
        assert torch.equal(state[key].to(tensor.dtype), tensor), key
    extra = "router.extra" if name == "gemma4" else "extra"
    with pytest.raises(ValueError, match=f"has tensors a .* MoE layer does not have: {extra}"):
        hf_state_dict({**tensors, extra: torch.zeros(1)}, family.config, moe_only=family.moe_only)


def test_importing_a_dense_layer_names_the_moe_layers():
    family = deepseek_v3()  # first_k_dense_replace 1: layer 0 is dense, layer 1 MoE
    with pytest.raises(ValueError, match=r"^deepseek_v3: decoder layer 0 has a dense MLP, not an MoE block; its MoE layers are 1 \(pass one of them as layer=\)$"):
        import_moe_block(family.block, family.config, layer=0)
