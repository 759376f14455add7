"""YAML reading with positions, anchors and merge keys; dumping and editing."""

from __future__ import annotations

import textwrap

from fastmoe_cfg.config.source import Located, Position
from fastmoe_cfg.config.yaml_reader import parse_yaml
from fastmoe_cfg.config.yaml_writer import dump_yaml, edit_yaml
from fastmoe_cfg.schemas import MLPBaseConfig, MoEMLPConfig, RMSNormalizationConfig
from tests.conftest import errors_of, load


def test_positions_of_keys_and_values() -> None:
    source = parse_yaml("type: moe\npre_norm:\n  type: rms_norm\nlist: [1, {a: 2}]\n", "f.yaml")
    assert source.problems == ()
    assert source.positions[()] == Located(None, Position(1, 1))
    assert source.positions[("type",)] == Located(Position(1, 1), Position(1, 7))
    assert source.positions[("pre_norm",)] == Located(Position(2, 1), Position(3, 3))
    assert source.positions[("pre_norm", "type")] == Located(Position(3, 3), Position(3, 9))
    assert source.positions[("list", 1, "a")] == Located(Position(4, 12), Position(4, 15))


def test_scalars_follow_the_yaml_1_2_core_schema() -> None:
    source = parse_yaml("a: 0x1F\nb: 1_000\nc: -.inf\nd: 1e-3\ne: null\nf: True\ng: yes\nh: '3'\ni: 0o17\n")
    assert source.problems == ()
    data = source.data
    assert (data["a"], data["b"], data["d"], data["e"], data["f"], data["g"], data["h"], data["i"]) == (
        31, 1000, 1e-3, None, True, "yes", "3", 15,
    )
    assert data["c"] == float("-inf")
    assert type(data["a"]) is int and type(data["f"]) is bool


def test_anchors_and_merge_keys() -> None:
    text = """\
    base: &base
      type: moe
      experts: 8
      gated: true
    model:
      mlp:
        <<: *base
        experts: 16
        pre_norm: &norm {type: rms_norm, epsilon: 1.0e-6}
        post_norm: *norm
    """
    config = load(text, key="model.mlp")
    assert isinstance(config, MoEMLPConfig)
    assert (config.experts, config.gated) == (16, True)  # explicit keys win over merged ones
    assert config.pre_norm == config.post_norm == RMSNormalizationConfig(epsilon=1e-6)


def test_merged_values_are_located_at_their_anchor() -> None:
    text = """\
    base: &base
      experts: "8"
    mlp:
      <<: *base
      type: moe
    """
    assert errors_of(text, key="mlp") == "moe.yaml:2:12: mlp.experts: expected an integer, got string '8'"


def test_merge_of_a_list_of_mappings_earlier_wins() -> None:
    text = "a: &a {experts: 4}\nb: &b {experts: 8, gated: true}\nmlp:\n  <<: [*a, *b]\n  type: moe\n"
    config = load(text, key="mlp")
    assert (config.experts, config.gated) == (4, True)


def test_load_dump_load_round_trip() -> None:
    text = """\
    type: moe
    experts: 8
    experts_per_token: 2
    gated: true
    pre_norm: {type: rms_norm, epsilon: 1.0e-6}
    router: {weight: {initialization: {type: normal, std: 0.02}, lr_scale: 0.5}}
    auxiliary_loss_coefficient: 0.001
    """
    config = load(text)
    dumped = config.dump()
    assert dumped == dump_yaml(config.to_dict())
    assert MLPBaseConfig.from_dict(parse_yaml(dumped).data) == config
    assert load(dumped) == config
    assert dumped.startswith("type: moe\n")
    assert "activation" not in dumped  # derived, not set
    resolved = config.dump(resolved=True)
    assert "activation: silu\n" in resolved and "implementation: auto\n" in resolved
    assert load(resolved) == config


def test_edit_keeps_comments_and_layout() -> None:
    text = textwrap.dedent(
        """\
        # Mixtral's MoE layer
        type: moe
        experts: 8   # routed experts
        gated: true
        """
    )
    edited = edit_yaml(text, {("experts",): 16, ("pre_norm", "type"): "rms_norm"})
    assert edited == textwrap.dedent(
        """\
        # Mixtral's MoE layer
        type: moe
        experts: 16  # routed experts
        gated: true
        pre_norm:
          type: rms_norm
        """
    )
    assert load(edited).experts == 16


def test_dump_is_block_style_in_field_order() -> None:
    assert dump_yaml({"type": "moe", "pre_norm": {"type": "rms_norm"}}) == "type: moe\npre_norm:\n  type: rms_norm\n"
