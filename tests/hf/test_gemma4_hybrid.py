"""`convert --from-hf` of Gemma-4 (no torch): the whole feed-forward as hybrid_moe, per layer under
use_double_wide_mlp, and `--moe-only` for its MoE branch as before. Parity with transformers: tests/layers/test_hybrid.py."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fastmoe_cfg.cli import app
from fastmoe_cfg.hf import config_from_hf
from fastmoe_cfg.schemas import HybridMoEMLPConfig, MoEMLPConfig
from tests.conftest import ROOT

runner = CliRunner()
PUBLISHED = ROOT / "tests" / "data" / "hf_configs" / "gemma4_26b_a4b.json"


def text_config(**changes) -> dict:
    return {**json.loads(PUBLISHED.read_text())["text_config"], **changes}


def test_the_whole_feed_forward_is_a_hybrid() -> None:
    config, hidden = config_from_hf(json.loads(PUBLISHED.read_text()))
    assert isinstance(config, HybridMoEMLPConfig) and hidden == 2816 and config.pre_norm is None
    assert (config.dense.intermediate_size, config.dense.gated, config.dense.activation, config.dense.add_linear_biases) == (2112, True, "gelu", False)
    assert config.dense.pre_norm.type == config.dense.post_norm.type == config.post_norm.type == "rms_norm"
    assert config.routed.router_normalization.type == "fixed_rms_norm" and config.routed.experts == 128
    assert config_from_hf(json.loads(PUBLISHED.read_text()), moe_only=True)[0] == MoEMLPConfig.from_dict(
        {**config.routed.to_dict(), "router_normalization": {"type": "rms_norm", "epsilon": 1e-6, "weight": {"enabled": False}}}
    )


@pytest.mark.parametrize(("layer", "width"), [(0, 2112), (23, 2112), (24, 4224), (29, 4224)])
def test_use_double_wide_mlp_doubles_the_dense_width_on_the_kv_sharing_layers(layer: int, width: int) -> None:
    data = text_config(use_double_wide_mlp=True, num_kv_shared_layers=6)  # 30 layers: 24-29 reuse a KV cache
    config, _ = config_from_hf(data, layer)
    assert config.dense.intermediate_size == width and config.routed.intermediate_size == 704


def test_convert_writes_the_hybrid_and_moe_only_the_moe_branch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    hybrid = runner.invoke(app, ["convert", "--from-hf", "tests/data/hf_configs/gemma4_26b_a4b.json"])
    assert hybrid.exit_code == 0 and "\ntype: hybrid_moe   # Gemma4TextDecoderLayer's feed-forward" in hybrid.stdout
    assert "\nformat_version: 2  # the config format version, not from HF\ndense:" in hybrid.stdout
    assert hybrid.stdout.count("format_version") == 1  # at the root only, not in dense or routed
    assert "post_norm:         # post_feedforward_layernorm, on the sum (rms_norm_eps)\n" in hybrid.stdout
    moe_only = runner.invoke(app, ["convert", "--from-hf", "tests/data/hf_configs/gemma4_26b_a4b.json", "--moe-only"])
    assert moe_only.exit_code == 0
    assert moe_only.stdout.startswith("# Written by: fastmoe-cfg convert --from-hf tests/data/hf_configs/gemma4_26b_a4b.json --moe-only\n")
    assert "\ntype: moe                               # the MoE branch of every Gemma4TextDecoderLayer" in moe_only.stdout
    assert "\nformat_version: 2                       # the config format version, not from HF\n" in moe_only.stdout
    assert "# Parameters of this layer: 761,635,200 in all, 47,948,160 active per token.\n" in moe_only.stdout


def test_moe_only_for_a_family_with_one_mlp_block_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, ["convert", "--from-hf", "tests/data/hf_configs/mixtral_8x7b.json", "--moe-only"])
    assert result.exit_code == 2
    assert "moe_only applies to Gemma-4 only, whose feed-forward is a dense MLP and an MoE block; mixtral has one MLP block" in result.output


def test_explain_counts_the_hybrid_exactly() -> None:
    result = runner.invoke(
        app, ["explain", str(ROOT / "tests" / "data" / "fast_llm" / "model_configs.yaml"), "--key",
              "gemma4.model.base_model.decoder.blocks.full_attention.mlp", "--hidden-size", "256", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    dense = 3 * 256 * 1024 + 2 * 256  # gated, no biases; pre_norm and post_norm
    expert = 3 * 256 * 256
    router = 256 * 4 + 256 + 4  # router, router_scale, router_per_expert_scale (the fixed_rms_norm has no weight)
    routed_norms = 2 * 256
    assert summary["dense_parameters"] == dense and summary["parameters_per_expert"] == expert
    assert summary["total_parameters"] == dense + router + 4 * expert + routed_norms
    assert summary["active_parameters"] == dense + router + 2 * expert + routed_norms
    assert summary["flops_per_token"] == 2 * 3 * 256 * 1024 + 2 * 256 * 4 + 2 * 2 * 3 * 256 * 256
