"""type: stack: which layers are MoE, per-layer overrides, whole-model counts against hand arithmetic, located errors."""

from __future__ import annotations

import textwrap

import pytest

from fastmoe_cfg import load_config
from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.config.loader import load_text
from fastmoe_cfg.schemas import MLPConfig, MoEMLPConfig, StackConfig
from fastmoe_cfg.schemas.stack import format_layers, parse_layers, root_class
from tests.conftest import ROOT

STACKS = ROOT / "examples" / "stacks"


def stack(text: str, **kwargs):
    return load_text(root_class, textwrap.dedent(text), file="stack.yaml", **kwargs)


def stack_errors(text: str, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        stack(text, **kwargs)
    return str(info.value)


def gated_mlp(hidden: int, width: int) -> int:
    """Parameters of a gated MLP without biases: gate, up and down projections."""
    return 3 * hidden * width


# ------------------------------------------------------------------------------ the three real stacks
def test_deepseek_v3_counts_match_hand_arithmetic() -> None:
    config = load_config(STACKS / "deepseek_v3.yaml")
    assert isinstance(config, StackConfig)
    assert config.layer_kinds() == "D" * 3 + "M" * 58
    H, dense_I, moe_I, routed, k = 7168, 18432, 2048, 256, 8
    dense = gated_mlp(H, dense_I)
    router = H * routed
    expert = gated_mlp(H, moe_I)
    shared = gated_mlp(H, moe_I)  # one shared expert of the same width
    moe_total = router + routed * expert + shared
    moe_active = router + k * expert + shared
    counts = config.counts(H)
    assert counts.total_parameters == 3 * dense + 58 * moe_total == 657_758_617_600
    assert counts.active_parameters == 3 * dense + 58 * moe_active == 24_284_495_872
    dense_flops = 2 * dense
    moe_flops = 2 * H * routed + 2 * k * expert + 2 * shared
    assert counts.flops_per_token == 3 * dense_flops + 58 * moe_flops
    assert (counts.layers, counts.moe_layers) == (61, 58)


def test_qwen3_30b_a3b_counts_match_hand_arithmetic() -> None:
    config = load_config(STACKS / "qwen3_30b_a3b.yaml")
    assert config.layer_kinds() == "M" * 48 and config.dense_mlp is None
    H, width, experts, k = 2048, 768, 128, 8
    router, expert = H * experts, gated_mlp(H, width)
    counts = config.counts(H)
    assert counts.total_parameters == 48 * (router + experts * expert) == 29_003_612_160
    assert counts.active_parameters == 48 * (router + k * expert) == 1_824_522_240
    assert counts.flops_per_token == 48 * (2 * router + 2 * k * expert)


def test_alternating_stack_counts_match_hand_arithmetic() -> None:
    config = load_config(STACKS / "alternating.yaml")
    assert config.layer_kinds() == "DM" * 12
    assert config.moe_layer_indices() == tuple(range(1, 24, 2))
    H = 2048
    dense = gated_mlp(H, 5632)
    router, expert = H * 16, gated_mlp(H, 1408)
    counts = config.counts(H)
    assert counts.total_parameters == 12 * dense + 12 * (router + 16 * expert) == 2_076_573_696
    # Eleven MoE layers route to 2 experts, the last one (the override) to 4.
    assert counts.active_parameters == 12 * dense + 11 * (router + 2 * expert) + (router + 4 * expert)
    assert config.block(23).experts_per_token == 4 and config.block(21).experts_per_token == 2
    assert config.block(23).provenance("experts_per_token") == "set"
    assert [name for name, _, _ in config.groups()] == ["dense_mlp", "mlp", "mlp + overrides[0]"]


def test_the_stacks_match_their_hugging_face_configs_layer_by_layer() -> None:
    from fastmoe_cfg.config.yaml_reader import read_yaml
    from fastmoe_cfg.hf.mapping import convert

    for name in ("deepseek_v3", "qwen3_30b_a3b"):
        config = load_config(STACKS / f"{name}.yaml")
        source = read_yaml(ROOT / "tests" / "data" / "hf_configs" / f"{name}.json")
        first = convert(source, None)
        assert first.layers == config.layers
        for layer in (0, first.moe_layers[0], config.layers - 1):
            assert convert(source, layer).config == config.block(layer), (name, layer)


def test_build_is_a_module_list_with_the_counted_parameters() -> None:
    torch = pytest.importorskip("torch")
    config = stack(
        """\
        type: stack
        format_version: 2
        layers: 4
        moe_every: 2
        mlp: {type: moe, experts: 4, experts_per_token: 2, intermediate_size: 8}
        dense_mlp: {type: mlp, intermediate_size: 16}
        """
    )
    modules = config.build(12)
    assert isinstance(modules, torch.nn.ModuleList) and len(modules) == 4
    assert [type(module).__name__ for module in modules] == ["MLP", "MoEMLP", "MLP", "MoEMLP"]
    assert modules[1] is not modules[3]  # equal blocks, separate weights
    assert sum(p.numel() for p in modules.parameters()) == config.counts(12).total_parameters
    assert modules[3](torch.randn(5, 12)).shape == (5, 12)


# ----------------------------------------------------------------------------------- the layer choice
def test_moe_layers_list_and_overrides_with_a_type_change() -> None:
    config = stack(
        """\
        type: stack
        format_version: 2
        layers: 6
        mlp: {type: moe, experts: 4, gated: true}
        dense_mlp: {type: mlp, intermediate_size: 64}
        moe_layers: [1, 2, 5]
        overrides:
          - {layers: "0", set: {type: moe, experts: 8}}        # a type change replaces the dense block
          - {layers: "1-2, 5", set: {pre_norm: {type: rms_norm}}}
          - {layers: 2, set: {pre_norm: {epsilon: 1.0e-6}}}     # nested mappings merge
        """
    )
    assert config.layer_kinds() == "MMMDDM"
    assert config.block(0).experts == 8 and config.block(0).gated is False  # not merged into dense_mlp's fields
    assert config.block(1).pre_norm.type == "rms_norm" and config.block(1).gated
    assert config.block(2).pre_norm.type == "rms_norm" and config.block(2).pre_norm.epsilon == 1e-6
    assert isinstance(config.block(3), MLPConfig) and isinstance(config.block(5), MoEMLPConfig)


def test_parse_and_format_layers() -> None:
    assert parse_layers("10-12, 3", 20) == (3, 10, 11, 12)
    assert parse_layers(4, 20) == (4,)
    assert format_layers([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    assert format_layers(range(1, 24, 2)) == "1, 3, ..., 23"
    with pytest.raises(ValueError, match="outside the stack's layers 0-19"):
        parse_layers("18-20", 20)


# --------------------------------------------------------------------------------------- errors
def test_an_override_error_names_the_layers_at_the_value_that_made_it() -> None:
    text = """\
        type: stack
        format_version: 2
        layers: 30
        mlp: {type: moe, experts: 8, experts_per_token: 2}
        overrides:
          - {layers: "10-20", set: {experts_per_token: 9}}
          - {layers: "25", set: {expertz: 4}}
        """
    assert stack_errors(text) == (
        "stack.yaml:6:48: layers 10-20: experts_per_token: must satisfy experts_per_token + shared_experts <= experts (9 + 0 > 8)\n"
        "stack.yaml:7:35: layers 25: expertz: unknown field (did you mean experts?)"
    )


def test_stack_rules_golden() -> None:
    text = """\
        type: stack
        format_version: 2
        layers: 4
        first_dense: 2
        mlp: {type: moe}
        overrides:
          - {layers: "3-9", set: {experts: 4}}
          - {layers: "x", set: {}}
        """
    assert stack_errors(text) == (
        "stack.yaml:4:1: first_dense: layers 0-1 are dense: give their block as dense_mlp (e.g. dense_mlp: {type: mlp, intermediate_size: ...})\n"
        "stack.yaml:7:6: overrides[0].layers: layer 9 is outside the stack's layers 0-3\n"
        "stack.yaml:8:6: overrides[1].layers: expected layer numbers and ranges like \"10-20\" or \"1, 4-6\", got 'x'"
    )


def test_moe_layers_rules_golden() -> None:
    text = """\
        type: stack
        layers: 4
        moe_every: 2
        mlp: {type: moe}
        moe_layers: [1, 1, 7]
        """
    assert stack_errors(text) == (
        "stack.yaml:3:1: moe_every: layers 0, 2-3 are dense: give their block as dense_mlp (e.g. dense_mlp: {type: mlp, intermediate_size: ...})\n"
        "stack.yaml:5:1: moe_layers: layer 7 is outside the stack's layers 0-3\n"
        "stack.yaml:5:1: moe_layers: layer 1 is listed twice\n"
        "stack.yaml:5:1: moe_layers: an explicit list of MoE layers: first_dense and moe_every do not apply (remove them, or remove moe_layers)"
    )


def test_a_block_error_keeps_its_path_in_the_stack() -> None:
    assert stack_errors("type: stack\nformat_version: 2\nlayers: 2\nmlp: {type: moe, experts: 0}\n") == (
        "stack.yaml:4:27: mlp.experts: must be >= 1, got 0"
    )


def test_a_value_no_layer_uses_is_an_error() -> None:
    text = """\
        type: stack
        format_version: 2
        layers: 6
        mlp: {type: moe, experts: 8}
        overrides:
          - {layers: "0-5", set: {pre_norm: {epsilon: 1.0e-6}}}
          - {layers: "0-5", set: {pre_norm: {type: rms_norm}}}
          - {layers: "0-2", set: {experts: 4}}
          - {layers: "2", set: {experts: 16}}
        """
    # The epsilon never reaches a block (the type change replaces pre_norm); experts: 4 still reaches layers 0-1.
    assert stack_errors(text) == (
        "stack.yaml:6:38: overrides[0].set.pre_norm.epsilon: no effect: a later override replaces it on every layer this one "
        "names (remove one of them)"
    )
    assert stack_errors("type: stack\nlayers: 2\nmlp: {type: moe}\ndense_mlp: {type: mlp}\n") == (
        "stack.yaml:4:1: dense_mlp: no layer is dense, so no layer uses it (remove it, or make layers dense with first_dense, "
        "moe_every or moe_layers)"
    )
    assert stack_errors("type: stack\nlayers: 2\nfirst_dense: 2\nmlp: {type: moe}\ndense_mlp: {type: mlp}\n") == (
        "stack.yaml:4:1: mlp: no layer is MoE, so no layer uses it (for a dense model, give the dense block as mlp, without "
        "dense_mlp and first_dense)"
    )


def test_bad_override_shapes_and_the_layer_bound_golden() -> None:
    text = """\
        type: stack
        layers: 3
        mlp: {type: moe}
        overrides: [{layers: "1", set: 3}, {layers: [1], set: {}}]
        """
    assert stack_errors(text) == (
        "stack.yaml:4:32: overrides[0].set: expected a mapping, got integer 3\n"
        'stack.yaml:4:37: overrides[1].layers: expected a layer number or a string of layers like "10-20" or "1, 4-6", got a list'
    )
    assert stack_errors("type: stack\nlayers: 1000000000000\nmlp: {type: moe}\n") == (
        "stack.yaml:2:9: layers: must be <= 100000, got 1000000000000"
    )


def test_a_block_version_other_than_the_stack_s_is_an_error_golden() -> None:
    """Fuzzed: a block's or an override's format_version was accepted and ignored (the stack's version decides)."""
    assert stack_errors(
        """\
        type: stack
        layers: 2
        mlp: {type: moe, format_version: 2, experts: 4}
        overrides:
          - {layers: "1", set: {format_version: 2}}
        """
    ) == (
        "stack.yaml:3:18: mlp.format_version: 2 is not the stack's version (1), in which its blocks are read: "
        "give format_version once, at the root of the stack\n"
        "stack.yaml:5:25: overrides[0].set.format_version: a layer has the stack's version: give format_version once, "
        "at the root of the stack"
    )
    assert stack("type: stack\nformat_version: 2\nlayers: 2\nmlp: {type: moe, format_version: 2, experts: 4}\n").layers == 2


def test_layers_that_end_up_equal_are_validated_once_and_share_one_block() -> None:
    """Fuzzed: 3000 one-layer overrides validated 3000 blocks twice (8 s for validate, 17 s for diff); blocks of
    equal data are now validated once, and each override's problem still names its own layers."""
    text = """\
        type: stack
        format_version: 2
        layers: 3
        mlp: {type: mlp, intermediate_size: 8}
        overrides:
          - {layers: "0", set: {intermediate_size: 16}}
          - {layers: "2", set: {intermediate_size: 16}}
        """
    blocks = stack(text).blocks()
    assert blocks[0] is blocks[2] and blocks[1] is not blocks[0]
    assert stack_errors(text.replace("16", "-1")) == (
        "stack.yaml:6:44: layers 0: intermediate_size: must be >= 1, got -1\n"
        "stack.yaml:7:44: layers 2: intermediate_size: must be >= 1, got -1"
    )
