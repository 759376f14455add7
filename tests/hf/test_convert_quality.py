"""`convert --from-hf` as a new user meets it: JSON read as Python's `json` reads it, problems at the HF field that
caused them, quantized checkpoints, our own YAML given by mistake, and `--all-layers` (a whole-model stack whose
totals are the sum over transformers' own blocks)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fastmoe_cfg.cli import app
from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.config.loader import load_text
from fastmoe_cfg.config.yaml_reader import read_json
from fastmoe_cfg.hf import convert
from fastmoe_cfg.hf.mapping import conversion_yaml, convert_all, stack_yaml
from fastmoe_cfg.schemas.stack import StackConfig
from tests.conftest import ROOT

HF_CONFIGS = ROOT / "tests" / "data" / "hf_configs"
runner = CliRunner()


def problems_of(path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        convert(read_json(path))
    return [problem.render() for problem in info.value.problems]


@pytest.mark.parametrize(
    "text, where, message",
    [
        ('{\n  "model_type": "mixtral",\n  "hidden_size": 8,\n}\n', "4:1", "Expecting property name enclosed in double quotes"),
        ('{\n  // a comment\n  "model_type": "mixtral"\n}\n', "2:3", "Expecting property name enclosed in double quotes"),
        ("{'model_type': 'mixtral'}", "1:2", "Expecting property name enclosed in double quotes"),
        ('{"model_type": "mixtral"', "1:25", "Expecting ',' delimiter"),
        ('{"hidden_size": [1, 2,]}', "1:23", "Expecting value"),
    ],
)
def test_invalid_json_is_one_problem_where_json_says(tmp_path, text, where, message):
    path = tmp_path / "config.json"
    path.write_text(text)
    with pytest.raises(json.JSONDecodeError) as reference:
        json.loads(text)
    assert f"{reference.value.lineno}:{reference.value.colno}" == where and reference.value.msg == message
    assert problems_of(path) == [f"{path}:{where}: not valid JSON: {message}"]


def test_a_rule_problem_is_placed_at_the_hf_field(tmp_path):
    data = json.loads((HF_CONFIGS / "olmoe_1b_7b.json").read_text())
    data["num_experts_per_tok"] = 65
    path = tmp_path / "config.json"
    text = json.dumps(data, indent=2)
    path.write_text(text)
    line = next(number for number, content in enumerate(text.splitlines(), 1) if '"num_experts_per_tok"' in content)
    column = text.splitlines()[line - 1].index("65") + 1
    assert problems_of(path) == [
        f"{path}:{line}:{column}: experts_per_token: must satisfy experts_per_token + shared_experts <= experts (65 + 0 > 64) "
        "(from HF num_experts_per_tok)"
    ]


def test_a_quantized_checkpoint_is_named_and_its_dtype_not_claimed():
    data = json.loads((HF_CONFIGS / "deepseek_v3.json").read_text())
    data["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}
    text = conversion_yaml(convert(data), "test")
    assert "# The checkpoint's weights are quantized (HF quantization_config: quant_method 'fp8'); bfloat16 (HF dtype)" in text
    assert "weights are bfloat16" not in text and "config.build(hidden_size, dtype=torch.bfloat16)" not in text
    assert "quantization_config" not in convert(data).unused  # read, not listed as outside the MLP


def test_our_own_yaml_given_as_hf_is_named(tmp_path):
    result = runner.invoke(app, ["convert", "--from-hf", str(ROOT / "examples" / "mixtral_8x7b.yaml")])
    assert result.exit_code == 1
    assert "type: this is a fastmoe_cfg config already, not a Hugging Face config.json (it has no model_type)" in result.stderr


def test_an_unknown_model_type_suggests_only_families_that_convert():
    data = json.loads((HF_CONFIGS / "mixtral_8x7b.json").read_text())
    with pytest.raises(ConfigError) as info:
        convert({**data, "model_type": "mixtrall"})
    assert info.value.problems[0].suggestion == "mixtral"
    with pytest.raises(ConfigError) as info:
        convert({**data, "model_type": "llama"})  # a dense family of transformers: not suggested, no family close to it
    assert info.value.problems[0].suggestion in (None, "llama4_text")


@pytest.mark.parametrize("name", ["deepseek_v3", "qwen2_57b_a14b", "gemma4_26b_a4b", "mixtral_8x7b"])
def test_all_layers_writes_a_stack_that_gives_every_layers_block(name, tmp_path):
    path = HF_CONFIGS / f"{name}.json"
    conversions = convert_all(read_json(path))
    result = runner.invoke(app, ["convert", "--from-hf", str(path), "--all-layers", "-o", str(tmp_path / "model.yaml")])
    assert result.exit_code == 0, result.output
    stack = load_text(StackConfig, (tmp_path / "model.yaml").read_text(), file="model.yaml")
    assert stack.blocks() == tuple(conversion.config for conversion in conversions)
    for index in (0, len(conversions) - 1):
        assert convert(read_json(path), index).config == conversions[index].config


def test_all_layers_places_dense_layers_and_per_layer_changes():
    """Qwen's mlp_only_layers (an explicit list) and Gemma-4's double-wide dense MLP on its last layers (an override)."""
    data = json.loads((HF_CONFIGS / "qwen3_30b_a3b.json").read_text()) | {"mlp_only_layers": [0, 5], "intermediate_size": 6144}
    text = stack_yaml(convert_all(data), "test")
    stack = load_text(StackConfig, text)
    assert stack.layer_kinds() == "D" + "M" * 4 + "D" + "M" * 42
    assert stack.moe_layers == [1, 2, 3, 4, *range(6, 48)] and stack.dense_mlp.intermediate_size == 6144
    gemma = json.loads((HF_CONFIGS / "gemma4_26b_a4b.json").read_text())
    gemma["text_config"] |= {"use_double_wide_mlp": True, "num_kv_shared_layers": 2}
    stack = load_text(StackConfig, stack_yaml(convert_all(gemma), "test"))
    widths = [block.dense.intermediate_size for block in stack.blocks()]
    assert widths == [2112] * 28 + [4224] * 2 and stack.overrides[0].layers == "28-29"


def test_all_layers_totals_are_the_sum_over_transformers_blocks():
    """DeepSeek-V3 at its published size: 3 dense DeepseekV3MLP and 58 DeepseekV3MoE blocks, built on the meta device."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MLP, DeepseekV3MoE

    data = json.loads((HF_CONFIGS / "deepseek_v3.json").read_text())
    config = transformers.DeepseekV3Config(**{key: value for key, value in data.items() if key not in ("auto_map", "architectures")})
    with torch.device("meta"):
        dense, moe = DeepseekV3MLP(config), DeepseekV3MoE(config)
    hf_total = 3 * sum(p.numel() for p in dense.parameters()) + 58 * sum(p.numel() for p in moe.parameters())
    text = stack_yaml(convert_all(data), "test")
    counts = load_text(StackConfig, text).counts(7168)
    assert f"Parameters of the model's MLPs: {counts.total_parameters:,} in all, {counts.active_parameters:,} active per token;" in text
    assert counts.total_parameters == hf_total


def test_a_wrapper_text_config_without_model_type_and_a_wrapper_level_quantization():
    """Kimi-K2.5's text_config without its model_type is read by the family that declares the wrapper (DeepSeek-V3's,
    not a made-up kimi_k25_text); a quantization_config at the wrapper's level describes the text model's weights."""
    data = json.loads((ROOT / "tests" / "data" / "hf_families" / "kimi_k25.json").read_text())
    text = data["text_config"]
    text.pop("model_type")
    data["quantization_config"] = text.pop("quantization_config", None) or {"quant_method": "fp8"}
    conversion = convert(data)
    assert conversion.family == "deepseek_v3" and conversion.quantization == data["quantization_config"]
    assert "# The checkpoint's weights are quantized" in conversion_yaml(conversion, "test")
