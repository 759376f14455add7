"""A Fast-LLM user's MLP blocks validate unchanged (issue 19).

The data are Fast-LLM's own configs (tests/data/fast_llm/, source and commit in each header): examples/mistral.yaml
and the MLP blocks of tests/utils/model_configs.py, validated with `--key` as a user would. Then every Fast-LLM field
of its MLP, MoE, hybrid, normalization and linear configs that fastmoe_cfg did not have: accepted with its meaning
here, or refused with a message that says why (golden texts). The hybrid's rules are Fast-LLM's, as golden texts too.
"""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from fastmoe_cfg import load_config
from fastmoe_cfg.schemas import (
    FixedRMSNormalizationConfig,
    HybridMoEMLPConfig,
    MLPConfig,
    MoEMLPConfig,
    NormalizationConfig,
)
from tests.conftest import ROOT, errors_of, load

DATA = ROOT / "tests" / "data" / "fast_llm"

BLOCKS = [  # (file, --key, the class it validates as)
    ("mistral.yaml", "model.base_model.decoder.block.mlp", MLPConfig),
    ("model_configs.yaml", "gpt_2.model.base_model.decoder.block.mlp", MLPConfig),
    ("model_configs.yaml", "llama.model.base_model.decoder.block.mlp", MLPConfig),
    ("model_configs.yaml", "mixtral.model.base_model.decoder.block.mlp", MoEMLPConfig),
    ("model_configs.yaml", "gemma4.model.base_model.decoder.blocks.sliding_attention.mlp", HybridMoEMLPConfig),
    ("model_configs.yaml", "gemma4.model.base_model.decoder.blocks.full_attention.mlp", HybridMoEMLPConfig),
]


@pytest.mark.parametrize(("file", "key", "klass"), BLOCKS, ids=[key.split(".")[0] if file != "mistral.yaml" else "mistral" for file, key, _ in BLOCKS])
def test_fast_llm_mlp_blocks_validate_with_key(file, key, klass) -> None:
    config = load_config(DATA / file, key=key)
    assert type(config) is klass


def test_the_copied_files_name_their_source() -> None:
    for path in DATA.glob("*.yaml"):
        assert path.read_text().startswith("# Source: github.com/ServiceNow/Fast-LLM, "), path
        assert "commit 7d61a1ba2047814955f8acc1cde7bc10a68fa198" in path.read_text().splitlines()[0], path


def test_the_gemma4_hybrid_reads_as_fast_llm_means_it() -> None:
    config = load_config(DATA / "model_configs.yaml", key="gemma4.model.base_model.decoder.blocks.full_attention.mlp")
    assert config.dense.intermediate_size == 1024 and config.routed.intermediate_size == 256 and config.routed.experts == 4
    assert config.dense.activation == config.routed.activation == "gelu" and config.dense.gated and config.routed.gated
    assert isinstance(config.routed.router_normalization, FixedRMSNormalizationConfig) and config.routed.router_input_scale == 256**-0.5
    assert config.dense.pre_norm.weight.initialization.std == 2**-5.5 and config.pre_norm is None and config.post_norm is None


def test_the_normalizations_of_those_files_validate() -> None:
    """The block and mixer norms around Fast-LLM's MLPs (fixed_rms_norm for Gemma-4's value norm, none, rms_norm)."""
    data = YAML(typ="safe").load((DATA / "model_configs.yaml").read_text())
    block = data["gemma4"]["model"]["base_model"]["decoder"]["blocks"]["full_attention"]
    norms = [block[name] for name in ("post_mixer_normalization", "post_mlp_normalization", "pre_mlp_normalization")]
    norms += [block["mixer"][name] for name in ("query_norm", "key_norm", "value_norm")]
    assert [NormalizationConfig.from_dict(norm).type for norm in norms] == ["rms_norm", "rms_norm", "none", "rms_norm", "rms_norm", "fixed_rms_norm"]


# Fast-LLM fields this project lacked, accepted with a meaning here.
ACCEPTED = {
    "fixed_rms_norm": "pre_norm: {type: fixed_rms_norm, epsilon: 1.0e-06}\n",
    "normalization lr_scale": "pre_norm: {type: rms_norm, lr_scale: 0.5}\npost_norm: {type: layer_norm, lr_scale: 0}\n",
    "normalization implementation auto and torch": "pre_norm: {type: rms_norm, implementation: torch}\npost_norm: {implementation: auto}\n",
    "linear apply_peft null, parameter weight_decay null": "layer_1: {apply_peft: null, weight: {weight_decay: null}}\n",
    "hybrid_moe with lr_scale and norms": "type: hybrid_moe\nlr_scale: 0.1\npre_norm: {type: rms_norm}\npost_norm: {type: rms_norm}\ndense: {}\nrouted: {}\n",
}


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_accepted_fast_llm_fields(text: str) -> None:
    load(text)


# Fast-LLM fields refused, with the reason: the whole error text.
REFUSED = {
    "apply_peft": (
        "layer_2:\n  apply_peft: true\n",
        "moe.yaml:2:3: layer_2.apply_peft: Fast-LLM's PEFT (LoRA) switch is not supported: fastmoe_cfg has no PEFT, so this layer is "
        "always trained in full (remove it, or set it to null)",
    ),
    "implementation triton": (
        "pre_norm:\n  type: rms_norm\n  implementation: triton\n",
        "moe.yaml:3:3: pre_norm.implementation: triton is Fast-LLM's, not available in fastmoe_cfg, which computes normalizations with "
        "torch only (use auto or torch)",
    ),
    "implementation fused and fast": (
        "pre_norm: {implementation: fused}\npost_norm: {implementation: fast}\n",
        "moe.yaml:1:12: pre_norm.implementation: fused is Fast-LLM's, not available in fastmoe_cfg, which computes normalizations with "
        "torch only (use auto or torch)\n"
        "moe.yaml:2:13: post_norm.implementation: fast is Fast-LLM's, not available in fastmoe_cfg, which computes normalizations with "
        "torch only (use auto or torch)",
    ),
    "lr_scale of no normalization": (
        "pre_norm: {type: none, lr_scale: 0.5}\n",
        "moe.yaml:1:24: pre_norm.lr_scale: has no effect: type: none has no parameters to scale (remove it)",
    ),
    "lr_scale of fixed_rms_norm": (
        "post_norm: {type: fixed_rms_norm, lr_scale: 0.5}\n",
        "moe.yaml:1:35: post_norm.lr_scale: has no effect: fixed_rms_norm has no parameters to scale (remove it)",
    ),
    "lr_scale of rms_norm without weight": (
        "post_norm: {type: rms_norm, weight: {enabled: false}, lr_scale: 0.5}\n",
        "moe.yaml:1:55: post_norm.lr_scale: has no effect: this rms_norm has no weight (weight.enabled is false) and so no parameters "
        "(remove it)",
    ),
    "weight_decay": (
        "layer_1:\n  weight: {weight_decay: 0.1}\npre_norm:\n  weight: {weight_decay: false}\n",
        "moe.yaml:2:12: layer_1.weight.weight_decay: Fast-LLM's per-parameter weight decay is not supported: fastmoe_cfg layers give the "
        "optimizer learning-rate scales only (parameter_groups); set weight decay in your optimizer's parameter groups (remove it, or "
        "set it to null)\n"
        "moe.yaml:4:12: pre_norm.weight.weight_decay: Fast-LLM's per-parameter weight decay is not supported: fastmoe_cfg layers give "
        "the optimizer learning-rate scales only (parameter_groups); set weight decay in your optimizer's parameter groups (remove it, "
        "or set it to null)",
    ),
    "fixed_rms_norm has no weight": (
        "pre_norm: {type: fixed_rms_norm, weight: {enabled: true}}\n",
        "moe.yaml:1:34: pre_norm.weight: unknown field for type: fixed_rms_norm (a field of type: layer_norm or rms_norm)",
    ),
}

# Fast-LLM's rules of hybrid_moe, reported at the branch field the user wrote.
HYBRID_RULES = {
    "routed shared experts": (
        "type: hybrid_moe\nrouted:\n  experts: 4\n  shared_experts: 1\n",
        "moe.yaml:4:3: routed.shared_experts: must be 0 in a hybrid_moe, got 1: the dense branch is the always-active MLP (widen "
        "dense.intermediate_size instead; Fast-LLM's rule)",
    ),
    "gated differs": (
        "type: hybrid_moe\ndense:\n  gated: true\n",
        "moe.yaml:3:3: dense.gated: dense and routed must agree on gated (dense true, routed false): checkpoint formats with a hybrid "
        "layer have one value for both (Fast-LLM's rule)",
    ),
    "activation differs": (
        "type: hybrid_moe\ndense:\n  activation: relu\nrouted:\n  activation: silu\n",
        "moe.yaml:5:3: routed.activation: dense and routed must agree on activation (dense relu, routed silu): checkpoint formats with "
        "a hybrid layer have one value for both (Fast-LLM's rule)",
    ),
    "all at once, with an MLP field on the hybrid": (
        "type: hybrid_moe\nintermediate_size: 64\ndense:\n  gated: true\nrouted:\n  experts: 4\n  shared_experts: 2\n  gated: false\n",
        "moe.yaml:2:1: intermediate_size: unknown field for type: hybrid_moe (a field of type: mlp or moe)\n"
        "moe.yaml:7:3: routed.shared_experts: must be 0 in a hybrid_moe, got 2: the dense branch is the always-active MLP (widen "
        "dense.intermediate_size instead; Fast-LLM's rule)\n"
        "moe.yaml:8:3: routed.gated: dense and routed must agree on gated (dense true, routed false): checkpoint formats with a hybrid "
        "layer have one value for both (Fast-LLM's rule)",
    ),
}


@pytest.mark.parametrize(("text", "expected"), [*REFUSED.values(), *HYBRID_RULES.values()], ids=[*REFUSED, *HYBRID_RULES])
def test_error_text(text: str, expected: str) -> None:
    assert errors_of(text) == expected


def test_hybrid_rules_with_key_and_override() -> None:
    """The branch that sets the field is named (routed when both do), through --key and --set."""
    text = "model:\n  mlp:\n    type: hybrid_moe\n    routed: {experts: 4}\n"
    assert errors_of(text, key="model.mlp", overrides=("dense.gated=true",)) == (
        "--set dense.gated=true: model.mlp.dense.gated: dense and routed must agree on gated (dense true, routed false): checkpoint formats "
        "with a hybrid layer have one value for both (Fast-LLM's rule)"
    )
    assert errors_of(text.replace("experts: 4", "gated: true"), key="model.mlp", overrides=("dense.gated=false",)) == (
        "moe.yaml:4:14: model.mlp.routed.gated: dense and routed must agree on gated (dense false, routed true): checkpoint formats "
        "with a hybrid layer have one value for both (Fast-LLM's rule)"
    )


def test_the_hybrid_inherits_only_the_block_fields() -> None:
    assert set(HybridMoEMLPConfig.model_fields) == {"type", "format_version", "pre_norm", "post_norm", "lr_scale", "dense", "routed"}
    assert {"intermediate_size", "gated", "layer_1", "activation", "recompute_level"} <= set(MLPConfig.model_fields) & set(MoEMLPConfig.model_fields)
