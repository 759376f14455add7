"""Golden error texts: the rendered ConfigError is an API and is compared whole."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError, Problem
from fastmoe_cfg.schemas import MoEMLPConfig, NormalizationConfig
from tests.conftest import errors_of

CASES = {
    "wrong type": (
        """\
        type: moe
        experts: "4"
        """,
        "moe.yaml:2:10: experts: expected an integer, got string '4'",
    ),
    "bool is not an int": (
        "type: moe\nexperts: true\n",
        "moe.yaml:2:10: experts: expected an integer, got true",
    ),
    "int is not a bool": (
        "gated: 1\n",
        "moe.yaml:1:8: gated: expected true or false, got integer 1",
    ),
    "yaml 1.1 yes is a string": (
        "gated: yes\n",
        "moe.yaml:1:8: gated: expected true or false, got string 'yes': YAML 1.2 reads yes, no, on and off as strings (did you mean true?)",
    ),
    "unknown key": (
        """\
        type: moe
        experts: 4
        experts_per_tokn: 2
        """,
        "moe.yaml:3:1: experts_per_tokn: unknown field (did you mean experts_per_token?)",
    ),
    "name from another system": (
        "type: moe\nnum_experts_per_tok: 2\n",
        "moe.yaml:2:1: num_experts_per_tok: unknown field (did you mean experts_per_token?)",
    ),
    "field of another variant": (
        "experts: 8\npre_norm: {type: rms_norm, bias: {}}\n",
        "moe.yaml:1:1: experts: unknown field for type: mlp (a field of type: moe)\n"
        "moe.yaml:2:28: pre_norm.bias: unknown field for type: rms_norm (a field of type: layer_norm)",
    ),
    "misspelt enum": (
        "type: moe\nrouting: sinkhorm\n",
        "moe.yaml:2:10: routing: expected one of aux_loss, sinkhorn, aux_free, balanced; got string 'sinkhorm' (did you mean sinkhorn?)",
    ),
    "missing required": (
        """\
        layer_1:
          weight:
            initialization:
              type: fill
        """,
        "moe.yaml:3:5: layer_1.weight.initialization.value: missing required field",
    ),
    "cross-field violation": (
        """\
        type: moe
        experts: 2
        experts_per_token: 3
        """,
        "moe.yaml:3:1: experts_per_token: must satisfy experts_per_token + shared_experts <= experts (3 + 0 > 2)",
    ),
    "duplicate key": (
        """\
        type: moe
        experts: 4
        experts: 8
        """,
        "moe.yaml:3:1: experts: duplicate key (first defined at line 2)",
    ),
    "wrong type:": (
        "type: mixture\n",
        "moe.yaml:1:7: type: unknown type 'mixture'; expected one of: hybrid_moe, mlp, moe (is the plugin that provides it installed?)",
    ),
    "wrong nested type: with suggestion": (
        "pre_norm:\n  type: rmsnorm\n",
        "moe.yaml:2:9: pre_norm.type: unknown type 'rmsnorm'; expected one of: fixed_rms_norm, layer_norm, none, rms_norm (did you mean rms_norm?)",
    ),
    "empty value is located at its key": (
        "type: moe\nexperts:\n\n# a comment\nexperts_per_token: 1\n",
        "moe.yaml:2:9: experts: expected an integer, got null",
    ),
    "constraint": (
        "intermediate_size: 0\n",
        "moe.yaml:1:20: intermediate_size: must be >= 1, got 0",
    ),
    "half-open constraint": (
        "type: moe\njitter_eps: 1.0\n",
        "moe.yaml:2:13: jitter_eps: must be < 1, got 1.0",
    ),
    "infinity": (
        "type: moe\nauxiliary_loss_coefficient: .inf\n",
        "moe.yaml:2:29: auxiliary_loss_coefficient: expected a finite number, got .inf",
    ),
    "nan": (
        "type: moe\nz_loss_coefficient: .nan\n",
        "moe.yaml:2:21: z_loss_coefficient: expected a finite number, got .nan",
    ),
    "python tag": (
        "type: moe\nexperts: !!python/object/apply:os.system [ls]\n",
        "moe.yaml:2:10: experts: tag !!python/object/apply:os.system is not allowed "
        "(only the YAML core schema: strings, numbers, booleans, null, mappings, lists)",
    ),
    "custom tag": (
        "type: moe\nrouting: !env ROUTING\n",
        "moe.yaml:2:10: routing: tag !env is not allowed (only the YAML core schema: strings, numbers, booleans, null, mappings, lists)",
    ),
    "date": (
        "type: moe\nrouting: 2001-12-14\n",
        "moe.yaml:2:10: routing: dates and timestamps are not supported here; quote the value to make it a string (got '2001-12-14')",
    ),
    "not a mapping": (
        "- type: moe\n",
        "moe.yaml:1:1: expected a mapping, got a list",
    ),
    "nested not a mapping": (
        "pre_norm: 3\n",
        "moe.yaml:1:11: pre_norm: expected a mapping, got integer 3",
    ),
    "empty document": (
        "# nothing here\n",
        "moe.yaml:1:1: the document is empty; expected a mapping of fields",
    ),
    "syntax error": (
        "type: moe\nexperts: [1, 2\n",
        "moe.yaml:3:1: invalid YAML: while parsing a flow sequence expected ',' or ']', but got '<stream end>'",
    ),
    "non-string key": (
        "type: moe\n[a, b]: 1\n",
        "moe.yaml:2:1: keys must be plain strings, not a mapping or a list",
    ),
    "two documents": (
        "type: moe\n---\ntype: mlp\n",
        "moe.yaml:2:1: invalid YAML: expected a single document in the stream but found another document",
    ),
    "integer beyond 64 bits": (
        "type: moe\nexperts: 0x" + "f" * 3600 + "\n",
        "moe.yaml:2:10: experts: '0x" + "f" * 54 + "... is not a 64-bit integer",
    ),
    "long strings are shortened": (
        "gated: '" + "x" * 500 + "'\n",
        "moe.yaml:1:8: gated: expected true or false, got string 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...",
    ),
    "type is not a string": (
        "type: 5\n",
        "moe.yaml:1:7: type: expected a variant name (one of: hybrid_moe, mlp, moe), got integer 5",
    ),
    "odd keys are quoted and escaped": (
        '"exp\\nerts": 1\n',
        'moe.yaml:1:1: "exp\\x0aerts": unknown field',
    ),
}


@pytest.mark.parametrize("text, expected", list(CASES.values()), ids=list(CASES))
def test_error_text(text: str, expected: str) -> None:
    assert errors_of(text) == expected


def test_every_problem_at_once_sorted_by_position() -> None:
    text = """\
    type: moe
    experts: 2
    experts_per_tokn: 1
    experts_per_token: 3
    routing: sinkhorm
    gated: yes
    intermediate_size: -1
    pre_norm:
      type: layernorm
    post_norm:
      type: rms_norm
      epsilon: "1"
    layer_1:
      bias: {enabled: 1}
    experts: 4
    """
    assert errors_of(text).splitlines() == [
        "moe.yaml:3:1: experts_per_tokn: unknown field (did you mean experts_per_token?)",
        "moe.yaml:4:1: experts_per_token: must satisfy experts_per_token + shared_experts <= experts (3 + 0 > 2)",
        "moe.yaml:5:10: routing: expected one of aux_loss, sinkhorn, aux_free, balanced; got string 'sinkhorm' (did you mean sinkhorn?)",
        "moe.yaml:6:8: gated: expected true or false, got string 'yes': YAML 1.2 reads yes, no, on and off as strings (did you mean true?)",
        "moe.yaml:7:20: intermediate_size: must be >= 1, got -1",
        "moe.yaml:9:9: pre_norm.type: unknown type 'layernorm'; expected one of: fixed_rms_norm, layer_norm, none, rms_norm (did you mean layer_norm?)",
        "moe.yaml:12:12: post_norm.epsilon: expected a number, got string '1'",
        "moe.yaml:14:19: layer_1.bias.enabled: expected true or false, got integer 1",
        "moe.yaml:15:1: experts: duplicate key (first defined at line 2)",
    ]


def test_type_null_selects_the_default_variant() -> None:
    from tests.conftest import load

    config = load("type: null\npre_norm: {type: null}\n")
    assert config.type == "mlp" and config.pre_norm.type == "layer_norm"


def test_rules_run_even_when_other_fields_fail() -> None:
    # pydantic skips model validators when a field fails; our rules still run on the valid fields.
    text = "type: moe\nexperts: 2\nexperts_per_token: 3\nintermediate_size: abc\n"
    assert errors_of(text).splitlines() == [
        "moe.yaml:3:1: experts_per_token: must satisfy experts_per_token + shared_experts <= experts (3 + 0 > 2)",
        "moe.yaml:4:20: intermediate_size: expected an integer, got string 'abc'",
    ]


def test_paths_are_from_the_document_root_under_key() -> None:
    text = """\
    model:
      mlp:
        type: moe
        experts: 4
        shared_experts: 2
        experts_per_token: 3
        routing: top_k
    """
    assert errors_of(text, key="model.mlp").splitlines() == [
        "moe.yaml:6:5: model.mlp.experts_per_token: must satisfy experts_per_token + shared_experts <= experts (3 + 2 > 4)",
        "moe.yaml:7:14: model.mlp.routing: expected one of aux_loss, sinkhorn, aux_free, balanced; got string 'top_k'",
    ]


def test_rule_skipped_when_its_field_failed() -> None:
    assert errors_of("type: moe\nexperts: two\nexperts_per_token: 3\n") == (
        "moe.yaml:2:10: experts: expected an integer, got string 'two'"
    )


def test_bad_value_reported_once() -> None:
    # A tag problem is not reported a second time as a type error.
    assert len(errors_of("type: moe\nexperts: !!binary aGVsbG8=\n").splitlines()) == 1


def test_override_errors_name_the_override() -> None:
    text = "type: moe\nexperts: 4\n"
    assert errors_of(text, overrides=("experts=abc",)) == "--set experts=abc: experts: expected an integer, got string 'abc'"
    assert errors_of(text, overrides=("expertz=8",)) == "--set expertz=8: expertz: unknown field (did you mean experts?)"
    assert errors_of(text, overrides=("experts",)) == "--set experts: expected KEY=VALUE with a dotted KEY, e.g. --set experts=8"
    assert errors_of(text, overrides=("experts=[1",)).startswith("--set experts=[1: experts: invalid YAML:")
    assert errors_of("type: moe\n", overrides=("experts.a=1",)) == (
        "--set experts.a=1: experts: expected an integer, got a mapping"
    )
    assert errors_of(text, overrides=("experts.x=1",)) == (
        "--set experts.x=1: experts.x: cannot set experts.x: experts is integer 4, not a mapping"
    )


def test_key_selection_errors() -> None:
    text = "model:\n  mlp:\n    type: moe\n"
    assert errors_of(text, key="model.mpl") == "moe.yaml:1:1: model: no key 'mpl' (selected with --key model.mpl) (did you mean mlp?)"
    assert errors_of(text, key="model.mlp.type.x") == (
        "moe.yaml:3:11: model.mlp.type: expected a mapping holding 'x' (selected with --key model.mlp.type.x)"
    )


def test_errors_from_python_construction_have_paths() -> None:
    with pytest.raises(ConfigError) as info:
        MoEMLPConfig(experts=2, experts_per_token=3, routing="topk", pre_norm={"type": "rms_norm", "epsilon": 0})
    assert str(info.value).splitlines() == [
        "pre_norm.epsilon: must be > 0, got 0",
        "routing: expected one of aux_loss, sinkhorn, aux_free, balanced; got string 'topk'",
        "experts_per_token: must satisfy experts_per_token + shared_experts <= experts (3 + 0 > 2)",
    ]
    assert isinstance(info.value, ValueError)


def test_problem_json_fields() -> None:
    with pytest.raises(ConfigError) as info:
        NormalizationConfig.from_dict({"type": "layer_nrm"})
    (problem,) = info.value.problems
    assert problem.to_json() == {
        "message": "unknown type 'layer_nrm'; expected one of: fixed_rms_norm, layer_norm, none, rms_norm",
        "path": "type",
        "file": None,
        "line": None,
        "column": None,
        "suggestion": "layer_norm",
        "override": None,
    }


def test_depth_is_bounded() -> None:
    # The root mapping is the first level, so the 64th bracket (column 9 + 64) is one too many.
    text = "type: moe\nexperts: " + "[" * 10_000 + "]" * 10_000 + "\n"
    assert errors_of(text) == "moe.yaml:2:73: nesting deeper than 64 levels"


def test_alias_bomb_is_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    message = errors_of("\n".join(lines) + "\n")
    assert "document too large: more than 100000 values after expanding aliases" in message
    assert message.startswith("moe.yaml:")


def test_invalid_utf8_is_located(tmp_path) -> None:
    from fastmoe_cfg import load_config

    path = tmp_path / "bad.yaml"
    path.write_bytes(b"type: moe\nexperts: \xff\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}:2:10: not valid UTF-8 (byte 0xff)"


# Issue 17: a rule inside a nested config is reported next to a failing field, at every depth.
NESTED_RULES = {
    "sibling of the rule fails (depth 1)": (
        "type: moe\npre_norm: {type: rms_norm, zero_centered: true, weight: {enabled: false}, epsilon: x}\n",
        "moe.yaml:2:28: pre_norm.zero_centered: stores the weight as an offset from 1: it needs the weight (weight.enabled is false)\n"
        "moe.yaml:2:84: pre_norm.epsilon: expected a number, got string 'x'",
    ),
    "a rule on a nested config next to a failing top-level field": (
        "type: moe\nintermediate_size: x\nshared_expert_gate: {enabled: true}\n",
        "moe.yaml:2:20: intermediate_size: expected an integer, got string 'x'\n"
        "moe.yaml:3:1: shared_expert_gate: gates the shared experts: it needs shared_experts >= 1",
    ),
    "sibling of the rule fails (depth 3)": (
        "type: moe\nrouter:\n  weight:\n    initialization: {type: normal, min: 1, max: 0, std: x}\n",
        "moe.yaml:4:36: router.weight.initialization.min: must satisfy min < max (1.0 >= 0.0)\n"
        "moe.yaml:4:57: router.weight.initialization.std: expected a number, got string 'x'",
    ),
    "nested rule and a failing field at every level": (
        "type: moe\nexperts: x\npost_norm:\n  type: layer_norm\n  zero_centered: true\n  weight: {enabled: false}\n"
        "  bias: {lr_scale: -1}\n",
        "moe.yaml:2:10: experts: expected an integer, got string 'x'\n"
        "moe.yaml:5:3: post_norm.zero_centered: stores the weight as an offset from 1: it needs the weight (weight.enabled is false)\n"
        "moe.yaml:7:20: post_norm.bias.lr_scale: must be >= 0, got -1",
    ),
}


@pytest.mark.parametrize("text, expected", list(NESTED_RULES.values()), ids=list(NESTED_RULES))
def test_nested_rules_are_reported_beside_failing_fields(text: str, expected: str) -> None:
    assert errors_of(text) == expected


def test_a_bug_in_a_rule_surfaces_as_a_bug() -> None:
    # A rule that raises on valid values is a bug in the rule: it is not taken for "the value is invalid".
    from typing import Literal

    from fastmoe_cfg.config.base import Rule, field

    @NormalizationConfig.register("buggy_norm")
    class BuggyNormalizationConfig(NormalizationConfig):
        """A normalization whose rule has a bug."""

        __rules__ = (Rule(fields=("epsilon",), check=lambda epsilon: epsilon.missing, message=lambda epsilon: "", doc="A bug."),)
        type: Literal["buggy_norm"] = field("buggy_norm", tier="core", desc="The normalization.")
        epsilon: float = field(1e-5, tier="architecture", gt=0, desc="Added to the variance.")

    try:
        with pytest.raises(AttributeError, match="missing"):
            errors_of("type: moe\nexperts: x\npre_norm: {type: buggy_norm}\n")
    finally:
        NormalizationConfig.unregister("buggy_norm")


def test_a_bug_in_a_derived_default_surfaces_as_a_bug() -> None:
    from typing import Literal

    from fastmoe_cfg.config.base import Derived, field

    @NormalizationConfig.register("buggy_derived_norm")
    class BuggyDerivedConfig(NormalizationConfig):
        """A normalization whose derived default has a bug."""

        __derived__ = (Derived(field="epsilon", depends_on=("scale",), compute=lambda scale: scale / 0, doc="A bug."),)
        type: Literal["buggy_derived_norm"] = field("buggy_derived_norm", tier="core", desc="The normalization.")
        scale: float = field(1.0, tier="architecture", desc="A scale.")
        epsilon: float | None = field(None, tier="architecture", desc="Derived.")

    try:
        with pytest.raises(ZeroDivisionError):
            errors_of("type: moe\npre_norm: {type: buggy_derived_norm, scale: 2.0}\n")
        # An invalid dependency is reported as such; nothing is derived from it.
        assert errors_of("type: moe\npre_norm: {type: buggy_derived_norm, scale: x}\n") == (
            "moe.yaml:2:45: pre_norm.scale: expected a number, got string 'x'"
        )
    finally:
        NormalizationConfig.unregister("buggy_derived_norm")


HINTS = {
    "HF names of the imported families": (
        "type: moe\nnorm_topk_prob: true\nn_shared_experts: 1\nn_routed_experts: 8\nnum_experts_per_tok: 2\n"
        "n_group: 4\ntopk_group: 2\nscoring_func: sigmoid\nmoe_intermediate_size: 64\nhidden_activation: gelu\n"
        "top_k_experts: 2\nswiglu_limit: 7.0\n",
        "moe.yaml:2:1: norm_topk_prob: unknown field (did you mean normalize_expert_weights?)\n"
        "moe.yaml:3:1: n_shared_experts: unknown field (did you mean shared_experts?)\n"
        "moe.yaml:4:1: n_routed_experts: unknown field; experts counts the shared experts too: "
        "experts = n_routed_experts + n_shared_experts (did you mean experts?)\n"
        "moe.yaml:5:1: num_experts_per_tok: unknown field (did you mean experts_per_token?)\n"
        "moe.yaml:6:1: n_group: unknown field (did you mean expert_groups?)\n"
        "moe.yaml:7:1: topk_group: unknown field (did you mean expert_groups_per_token?)\n"
        "moe.yaml:8:1: scoring_func: unknown field (did you mean router_score_function?)\n"
        "moe.yaml:9:1: moe_intermediate_size: unknown field (did you mean intermediate_size?)\n"
        "moe.yaml:10:1: hidden_activation: unknown field (did you mean activation?)\n"
        "moe.yaml:11:1: top_k_experts: unknown field (did you mean experts_per_token?)\n"
        "moe.yaml:12:1: swiglu_limit: unknown field (did you mean activation_limit?)",
    ),
    "Qwen's num_experts leaves the shared expert out": (
        "type: moe\nnum_experts: 60\n",
        "moe.yaml:2:1: num_experts: unknown field; with shared experts, experts = num_experts + shared_experts "
        "(experts counts them) (did you mean experts?)",
    ),
    "type differs in case only": (
        "type: MoE\n",
        "moe.yaml:1:7: type: unknown type 'MoE'; expected one of: hybrid_moe, mlp, moe (did you mean moe?)",
    ),
    "yaml 1.1 booleans": (
        "gated: no\nadd_linear_biases: On\n",
        "moe.yaml:1:8: gated: expected true or false, got string 'no': YAML 1.2 reads yes, no, on and off as strings "
        "(did you mean false?)\n"
        "moe.yaml:2:20: add_linear_biases: expected true or false, got string 'On': YAML 1.2 reads yes, no, on and off as "
        "strings (did you mean true?)",
    ),
    "a key indented under a value": (
        "type: moe\nexperts: 4\n  experts_per_token: 2\n",
        "moe.yaml:3:20: invalid YAML: mapping values are not allowed here (a `key: value` where a plain value was expected: "
        "check the indentation of this line against the lines above, or quote a value that contains ': ')",
    ),
    "a whole model file without --key": (
        "model:\n  hidden_size: 128\n  mlp:\n    type: moe\n    experts: 4\ntraining:\n  lr: 1\n",
        "moe.yaml:1:1: model: unknown field; the config seems to be at model.mlp: select it with --key model.mlp\n"
        "moe.yaml:6:1: training: unknown field",
    ),
    "the fullest candidate, not an anchor of shared defaults": (
        "defaults: &d {type: moe, gated: true}\nmodel:\n  mlp:\n    <<: *d\n    experts: 4\n",
        "moe.yaml:1:1: defaults: unknown field\n"
        "moe.yaml:2:1: model: unknown field; the config seems to be at model.mlp: select it with --key model.mlp",
    ),
    "a model file whose nested type is not a string": (
        "model:\n  mlp: {type: [1]}\n",
        "moe.yaml:1:1: model: unknown field",
    ),
}


@pytest.mark.parametrize("text, expected", list(HINTS.values()), ids=list(HINTS))
def test_hints(text: str, expected: str) -> None:
    assert errors_of(text) == expected


def test_a_config_warning_survives_pickling_and_a_text_only_copy():
    """pytest-xdist sends warnings between processes: a ConfigWarning keeps its problem through pickle, and one
    rebuilt from its text alone is a problem with that message."""
    import pickle

    from fastmoe_cfg.config.errors import ConfigWarning

    warning = ConfigWarning(Problem("changed meaning", "router_dtype", "moe.yaml", 3, 1))
    copy = pickle.loads(pickle.dumps(warning))
    assert copy.problem == warning.problem and str(copy) == str(warning) == "moe.yaml:3:1: router_dtype: warning: changed meaning"
    assert ConfigWarning("text").problem == Problem("text")
