"""`config_from_hf` and `fastmoe-cfg convert`: HF model configs -> our configs, without torch.

The config.json files under tests/data/hf_configs are the published models' (written by hand, see SOURCES.md);
each example under examples/ is exactly what `convert` writes for one of them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastmoe_cfg import load_config
from fastmoe_cfg.cli import app
from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.hf import config_from_hf, convert
from fastmoe_cfg.hf.families import families
from fastmoe_cfg.schemas import MLPConfig, MoEMLPConfig
from tests.conftest import ROOT

HF_CONFIGS = ROOT / "tests" / "data" / "hf_configs"
SUPPORTED = ", ".join(sorted(families()))
MODELS = sorted(path.stem for path in HF_CONFIGS.glob("*.json"))
runner = CliRunner()


def hf_config(name: str) -> dict:
    return json.loads((HF_CONFIGS / f"{name}.json").read_text())


def errors(data: dict, layer: int | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_hf(data, layer)
    return str(info.value)


def test_every_family_has_a_published_config() -> None:
    assert MODELS == ["deepseek_v3", "gemma4_26b_a4b", "gpt_oss_20b", "mixtral_8x7b", "olmoe_1b_7b", "qwen2_57b_a14b", "qwen3_30b_a3b"]


# Each published model's MoE layer, field by field (model cards and NUMERICS.md): our experts count the shared ones.
EXPECTED = {
    "mixtral_8x7b": (4096, dict(experts=8, experts_per_token=2, intermediate_size=14336, activation="silu", normalize_expert_weights=True, router_dtype="input", auxiliary_loss_coefficient=0.02)),
    "qwen3_30b_a3b": (2048, dict(experts=128, experts_per_token=8, intermediate_size=768, normalize_expert_weights=True, router_dtype="input")),
    "qwen2_57b_a14b": (3584, dict(experts=65, shared_experts=1, experts_per_token=8, intermediate_size=2560, shared_expert_intermediate_size=20480, normalize_expert_weights=False)),
    "olmoe_1b_7b": (2048, dict(experts=64, experts_per_token=8, intermediate_size=1024, normalize_expert_weights=False, auxiliary_loss_coefficient=0.01)),
    "deepseek_v3": (7168, dict(
        experts=257, shared_experts=1, experts_per_token=8, intermediate_size=2048, routing="aux_free", router_score_function="sigmoid",
        normalize_expert_weights=True, routed_scaling_factor=2.5, expert_groups=8, expert_groups_per_token=4, router_dtype="float32",
    )),
    "gpt_oss_20b": (2880, dict(
        experts=32, experts_per_token=4, intermediate_size=2880, activation="gpt_oss_glu", activation_limit=7.0, add_linear_biases=True,
        router_score_function="softmax", normalize_expert_weights=True, router_dtype="input",
    )),
    "gemma4_26b_a4b": (2816, dict(
        experts=128, experts_per_token=8, intermediate_size=704, activation="gelu", router_input_scale=2816**-0.5, normalize_expert_weights=True,
    )),
}


@pytest.mark.parametrize("name", MODELS)
def test_published_models_convert_to_their_moe_layer(name: str) -> None:
    # Gemma-4: its MoE branch (its whole feed-forward, a hybrid_moe: tests/hf/test_gemma4_hybrid.py)
    config, hidden = config_from_hf(hf_config(name), moe_only=name.startswith("gemma4"))
    expected_hidden, fields = EXPECTED[name]
    assert isinstance(config, MoEMLPConfig) and hidden == expected_hidden
    assert config.gated and {key: getattr(config, key) for key in fields} == fields


def test_gemma4_maps_its_router_and_norms() -> None:
    config, _ = config_from_hf(hf_config("gemma4_26b_a4b"), moe_only=True)
    for norm in (config.router_normalization, config.pre_norm, config.post_norm):
        assert norm.type == "rms_norm" and norm.epsilon == 1e-6 and not norm.zero_centered
    # router: RMSNorm without weight, then the learnable scale, then × hidden^-0.5 (transformers' Gemma4TextRouter)
    assert config.router_normalization.weight.enabled is False and config.pre_norm.weight.enabled is None
    assert config.router_scale.enabled and config.router_input_scale == 2816**-0.5
    assert config.router_per_expert_scale.enabled and not config.add_linear_biases


def test_gpt_oss_and_qwen2_switch_on_their_optional_parameters() -> None:
    assert config_from_hf(hf_config("gpt_oss_20b"))[0].router_bias.enabled
    assert config_from_hf(hf_config("qwen2_57b_a14b"))[0].shared_expert_gate.enabled


@pytest.mark.parametrize("name", MODELS)
def test_each_example_is_what_convert_writes(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["convert", "--from-hf", f"tests/data/hf_configs/{name}.json"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (ROOT / "examples" / f"{name}.yaml").read_text()
    conversion = convert(hf_config(name))
    assert load_config(ROOT / "examples" / f"{name}.yaml") == conversion.written_config()
    unversioned = conversion.written_config().model_copy(update={"format_version": None})
    assert unversioned == conversion.config == config_from_hf(hf_config(name))[0]  # format_version: in the file only


def test_converted_yaml_names_the_source_of_every_value() -> None:
    text = (ROOT / "examples" / "deepseek_v3.yaml").read_text()
    assert text.startswith(
        "# Written by: fastmoe-cfg convert --from-hf tests/data/hf_configs/deepseek_v3.json\n"
        "# Hugging Face model_type deepseek_v3, decoder layer 3 of 61 (an MoE layer; MoE layers: 58 of them: 3-60).\n"
        "# The model's width is hidden_size 7168; it is not part of this config. Counts and FLOPs:\n"
        "#   fastmoe-cfg explain THIS_FILE --hidden-size 7168\n"
        "# Parameters of this layer: 11,320,164,352 in all, 398,196,736 active per token.\n"
        "# The checkpoint's weights are bfloat16 (HF dtype): config.build(hidden_size, dtype=torch.bfloat16).\n"
    )
    assert (
        "\ntype: moe                               # DeepseekV3MoE: layer >= first_k_dense_replace\n"
        "format_version: 2                       # the config format version, not from HF\n"
    ) in text
    assert "experts: 257                            # n_routed_experts + n_shared_experts\n" in text
    assert "expert_groups_per_token: 4              # topk_group\n" in text
    body = [line for line in text.splitlines() if line and not line.startswith("#") and not line.startswith("  ")]
    assert all(" # " in line for line in body), body
    assert "vocab_size" in text and "kv_lora_rank" in text  # named as not converted


# Independent counts of one MoE layer, from the published shapes (3 matrices per gated expert, router E_r × H).
COUNTS = {
    # name: (total, active per token)
    "mixtral_8x7b": (8 * 3 * 4096 * 14336 + 8 * 4096, 2 * 3 * 4096 * 14336 + 8 * 4096),
    "deepseek_v3": ((256 + 1) * 3 * 7168 * 2048 + 256 * 7168, (8 + 1) * 3 * 7168 * 2048 + 256 * 7168),
    # GPT-OSS: biases on both expert linears and the router
    "gpt_oss_20b": (
        32 * (3 * 2880 * 2880 + 2 * 2880 + 2880) + 32 * 2880 + 32,
        4 * (3 * 2880 * 2880 + 2 * 2880 + 2880) + 32 * 2880 + 32,
    ),
    # Qwen2: 64 routed experts, a shared expert of width 20480 and its gate vector
    "qwen2_57b_a14b": (
        64 * 3 * 3584 * 2560 + 3 * 3584 * 20480 + 3584 + 64 * 3584,
        8 * 3 * 3584 * 2560 + 3 * 3584 * 20480 + 3584 + 64 * 3584,
    ),
    # Gemma-4's feed-forward (hybrid_moe): the MoE branch (router scale [H], per-expert scale [E], two norms [H]),
    # the dense gated MLP of width 2112 and its three norms [H] (pre, post_1, and post on the sum)
    "gemma4_26b_a4b": (
        128 * 3 * 2816 * 704 + 128 * 2816 + 2816 + 128 + 2 * 2816 + 3 * 2816 * 2112 + 3 * 2816,
        8 * 3 * 2816 * 704 + 128 * 2816 + 2816 + 128 + 2 * 2816 + 3 * 2816 * 2112 + 3 * 2816,
    ),
    "qwen3_30b_a3b": (128 * 3 * 2048 * 768 + 128 * 2048, 8 * 3 * 2048 * 768 + 128 * 2048),
    "olmoe_1b_7b": (64 * 3 * 2048 * 1024 + 64 * 2048, 8 * 3 * 2048 * 1024 + 64 * 2048),
}


@pytest.mark.parametrize("name", MODELS)
def test_explain_reports_exact_parameter_counts(name: str) -> None:
    hidden = EXPECTED[name][0]
    result = runner.invoke(app, ["explain", str(ROOT / "examples" / f"{name}.yaml"), "--hidden-size", str(hidden), "--format", "json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert (summary["total_parameters"], summary["active_parameters"]) == COUNTS[name]
    text = runner.invoke(app, ["explain", str(ROOT / "examples" / f"{name}.yaml"), "--hidden-size", str(hidden)], env={"COLUMNS": "120"}).stdout
    assert f"{COUNTS[name][0]:,}" in text and f"{COUNTS[name][1]:,}" in text


def test_counts_equal_the_parameters_of_transformers_own_block() -> None:
    """DeepSeek-V3 and GPT-OSS at full size, built on the meta device (no memory): the HF block's parameters are
    our total; active = total - (E_r - k) experts' parameters."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP

    for name, block_class, experts in (("deepseek_v3", DeepseekV3MoE, "experts"), ("gpt_oss_20b", GptOssMLP, "experts")):
        data = hf_config(name)
        config = transformers.AutoConfig.for_model(**data)
        with torch.device("meta"):
            block = block_class(config)
        total = sum(parameter.numel() for parameter in block.parameters())
        expert_parameters = sum(parameter.numel() for parameter in getattr(block, experts).parameters())
        routed, k = config.num_local_experts, config.num_experts_per_tok
        assert (total, total - (routed - k) * expert_parameters // routed) == COUNTS[name]


# --- which layer --------------------------------------------------------------------------------------------------


def test_deepseek_dense_layers_map_to_a_dense_mlp() -> None:
    data = hf_config("deepseek_v3")
    assert convert(data).layer == 3  # first_k_dense_replace 3: the first MoE layer
    dense, hidden = config_from_hf(data, layer=0)
    assert isinstance(dense, MLPConfig) and hidden == 7168
    assert (dense.intermediate_size, dense.gated, dense.activation, dense.add_linear_biases) == (18432, True, "silu", False)
    assert isinstance(config_from_hf(data, layer=60)[0], MoEMLPConfig)


def test_qwen_sparse_step_and_mlp_only_layers() -> None:
    data = {**hf_config("qwen3_30b_a3b"), "decoder_sparse_step": 2, "mlp_only_layers": [1, 2], "num_hidden_layers": 6}
    conversion = convert(data)
    assert conversion.moe_layers == (3, 5) and conversion.layer == 3
    assert isinstance(config_from_hf(data, layer=1)[0], MLPConfig)
    assert config_from_hf(data, layer=1)[0].intermediate_size == 6144  # the dense layers' intermediate_size
    data["num_experts"] = 0
    assert convert(data).moe_layers == () and isinstance(config_from_hf(data)[0], MLPConfig)


def test_a_layer_beyond_the_model_is_an_error() -> None:
    assert errors(hf_config("olmoe_1b_7b"), layer=16) == "num_hidden_layers: there is no decoder layer 16: the model has 16 (0 to 15)"


# --- what cannot be converted ------------------------------------------------------------------------------------


def test_every_unrepresentable_setting_is_named_at_once() -> None:
    data = {**hf_config("mixtral_8x7b"), "router_jitter_noise": "0.1", "hidden_act": "gelu_fast", "num_local_experts": "8"}
    assert sorted(errors(data).splitlines()) == [
        "hidden_act: activation 'gelu_fast' has no equivalent here (supported: silu, swish, gelu_pytorch_tanh, gelu_new, gelu, relu) (did you mean gelu?)",
        "num_local_experts: expected an integer, got string '8'",
        "router_jitter_noise: expected a number, got string '0.1'",
    ]


@pytest.mark.parametrize(
    "name, changes, message",
    [
        ("deepseek_v3", {"scoring_func": "softmax"}, "scoring_func: string 'softmax' cannot be converted: DeepSeek-V3 scores with sigmoid"),
        ("deepseek_v3", {"topk_method": "greedy"}, "topk_method: string 'greedy' cannot be converted: DeepSeek-V3 routes with noaux_tc (group-limited, aux-free bias)"),
        ("gpt_oss_20b", {"swiglu_alpha": 1.5}, "swiglu_alpha: number 1.5 cannot be converted: our gpt_oss_glu has alpha 1.702, as HF's experts"),
        ("gpt_oss_20b", {"experts_per_token": 2}, "experts_per_token: integer 2 cannot be converted: disagrees with num_experts_per_tok (4), which transformers uses"),
        ("deepseek_v3", {"moe_layer_freq": 2}, "moe_layer_freq: integer 2 cannot be converted: transformers makes every layer from first_k_dense_replace on an MoE layer, DeepSeek's own code only every moe_layer_freq-th: which layers are MoE is ambiguous; set it to 1"),
        ("deepseek_v3", {"n_routed_experts": None}, "n_routed_experts: missing: expected an integer"),
        ("deepseek_v3", {"routed_scaling_factor": 10**400}, "routed_scaling_factor: expected a number, got integer <a 1329-bit integer>"),
        ("mixtral_8x7b", {"num_experts": 4}, "num_experts: disagrees with num_local_experts (4 != 8): which one the model uses is unclear"),
        ("qwen2_57b_a14b", {"shared_expert_intermediate_size": 0}, "shared_expert_intermediate_size: must be >= 1, got 0"),
        ("qwen3_30b_a3b", {"mlp_only_layers": ["0"]}, "mlp_only_layers[0]: expected an integer, got string '0'"),
        ("mixtral_8x7b", {"num_local_experts": None, "num_local_expert": 8}, "num_local_expert: unknown field: a required field of this mixtral config is num_local_experts, which is absent (did you mean num_local_experts?)"),
        ("qwen3_30b_a3b", {"norm_topk_prob": None, "norm_topk_probs": True}, "norm_topk_probs: unknown field: a field of this qwen3_moe config is norm_topk_prob, which is absent (did you mean norm_topk_prob?)"),
        ("olmoe_1b_7b", {"num_experts": None}, "num_experts: missing: expected an integer"),
        ("olmoe_1b_7b", {"model_type": "olmo"}, f"model_type: cannot convert model_type 'olmo': supported are {SUPPORTED} (did you mean olmoe?)"),
        ("olmoe_1b_7b", {"model_type": None}, f"model_type: missing: the family of the model (one of {SUPPORTED})"),
        ("olmoe_1b_7b", {"hidden_size": 0}, "hidden_size: must be >= 1, got 0"),
        ("olmoe_1b_7b", {"num_experts_per_tok": 65}, "experts_per_token: must satisfy experts_per_token + shared_experts <= experts (65 + 0 > 64) (from HF num_experts_per_tok)"),
    ],
)
def test_errors_name_the_hf_field(name: str, changes: dict, message: str) -> None:
    data = {key: value for key, value in {**hf_config(name), **changes}.items() if value is not None}
    assert errors(data) == message


def test_gemma4_without_moe_block_is_an_error() -> None:
    data = hf_config("gemma4_26b_a4b")
    data["text_config"]["enable_moe_block"] = False
    message = "this Gemma-4 model has no MoE block (enable_moe_block is false or absent): nothing to convert"
    assert errors(data) == f"text_config.enable_moe_block: {message}"
    data["text_config"]["enable_moe_block"] = "true"
    assert errors(data) == "text_config.enable_moe_block: expected true or false, got string 'true'"


def test_mixtral_router_jitter_noise_is_jitter_on_the_layer_input() -> None:
    """Mixtral's block jitters its input (router and experts see it); transformers' Qwen and OLMoE blocks never read the field."""
    config = convert({**hf_config("mixtral_8x7b"), "router_jitter_noise": 0.1}).config
    assert (config.jitter_eps, config.jitter_target, config.jitter_distribution) == (0.1, "layer_input", "uniform")
    assert convert({**hf_config("mixtral_8x7b"), "router_jitter_noise": 0.0}).config.jitter_target is None
    assert errors({**hf_config("mixtral_8x7b"), "router_jitter_noise": 1.5}) == (
        "jitter_eps: must be < 1, got 1.5 (from HF router_jitter_noise: the block input is multiplied by U(1 ± eps) in training)"
    )
    for name in ("qwen2_57b_a14b", "qwen3_30b_a3b", "olmoe_1b_7b"):
        assert "router_jitter_noise" in convert({**hf_config(name), "router_jitter_noise": 0.1}).unused


def test_keys_that_are_not_strings_are_listed_as_unused() -> None:
    assert "1" in convert({**hf_config("olmoe_1b_7b"), 1: 2}).unused


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="expected a dict or a transformers config, got list"):
        config_from_hf([1, 2])
    path = tmp_path / "config.json"
    path.write_text("[1, 2]\n")
    result = runner.invoke(app, ["convert", "--from-hf", str(path)])
    assert result.exit_code == 1 and result.output.startswith(f"{path}:1:1: expected a mapping (a model's config.json)\n")


# --- the command -------------------------------------------------------------------------------------------------


def test_convert_reports_located_problems_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    text = (HF_CONFIGS / "mixtral_8x7b.json").read_text().replace('"router_aux_loss_coef": 0.02', '"router_aux_loss_coef": 0.02, "router_jitter_noise": [0.5]')
    path.write_text(text)
    line = next(number for number, content in enumerate(text.splitlines(), 1) if "router_jitter_noise" in content)
    column = text.splitlines()[line - 1].index("[0.5]") + 1
    result = subprocess.run(
        [sys.executable, "-m", "fastmoe_cfg", "convert", "--from-hf", str(path), "-o", str(tmp_path / "moe.yaml")],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"},
    )
    assert result.returncode == 1 and not (tmp_path / "moe.yaml").exists()
    assert result.stderr.startswith(f"{path}:{line}:{column}: router_jitter_noise: expected a number, got a list\n")
    assert "^" in result.stderr and "Traceback" not in result.stderr


def test_convert_reads_broken_json_as_a_located_problem(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text('{"model_type": "mixtral",\n "hidden_size": 4096,,\n}')
    result = runner.invoke(app, ["convert", "--from-hf", str(path)])
    assert result.exit_code == 1 and f"{path}:2:" in result.output and "Traceback" not in result.output


def test_convert_writes_a_file_that_validates(tmp_path: Path) -> None:
    out = tmp_path / "layer0.yaml"
    result = runner.invoke(app, ["convert", "--from-hf", str(HF_CONFIGS / "deepseek_v3.json"), "--layer", "0", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert isinstance(load_config(out), MLPConfig) and "decoder layer 0 of 61 (a dense MLP" in out.read_text()
    assert runner.invoke(app, ["convert", "--from-hf", str(HF_CONFIGS / "deepseek_v3.json"), "-o", str(out)]).exit_code == 2
    assert runner.invoke(app, ["convert", "--from-hf", str(HF_CONFIGS / "deepseek_v3.json"), "-o", str(out), "--force"]).exit_code == 0
    assert isinstance(load_config(out), MoEMLPConfig)


@pytest.mark.parametrize(
    "name, module, block_class",
    [
        ("mixtral_8x7b", "mixtral", "MixtralSparseMoeBlock"),
        ("qwen2_57b_a14b", "qwen2_moe", "Qwen2MoeSparseMoeBlock"),
        ("qwen3_30b_a3b", "qwen3_moe", "Qwen3MoeSparseMoeBlock"),
        ("olmoe_1b_7b", "olmoe", "OlmoeSparseMoeBlock"),
        ("deepseek_v3", "deepseek_v3", "DeepseekV3MoE"),
        ("gpt_oss_20b", "gpt_oss", "GptOssMLP"),
    ],
)
def test_each_published_moe_layer_counts_as_transformers_block(name: str, module: str, block_class: str) -> None:
    """Our per-layer total at the published size equals the parameters of transformers' block built on the meta device
    (Gemma-4's feed-forward: tests/layers/test_hybrid.py)."""
    import importlib

    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from fastmoe_cfg.schemas.counts import count_layer

    data = hf_config(name)
    config = transformers.AutoConfig.for_model(**data)
    with torch.device("meta"):
        block = getattr(importlib.import_module(f"transformers.models.{module}.modeling_{module}"), block_class)(config)
    ours, hidden = config_from_hf(data)
    assert count_layer(ours, hidden).total_parameters == sum(parameter.numel() for parameter in block.parameters())
