"""Golden error texts: the rendered ConfigError is an API and is compared whole."""

from __future__ import annotations

import pytest

from fastmoe_cfg.config.errors import ConfigError
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
        "moe.yaml:1:7: type: unknown type 'mixture'; expected one of: mlp, moe",
    ),
    "wrong nested type: with suggestion": (
        "pre_norm:\n  type: rmsnorm\n",
        "moe.yaml:2:9: pre_norm.type: unknown type 'rmsnorm'; expected one of: layer_norm, none, rms_norm (did you mean rms_norm?)",
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
        "moe.yaml:1:7: type: expected a variant name (one of: mlp, moe), got integer 5",
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
        "moe.yaml:9:9: pre_norm.type: unknown type 'layernorm'; expected one of: layer_norm, none, rms_norm (did you mean layer_norm?)",
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
        "message": "unknown type 'layer_nrm'; expected one of: layer_norm, none, rms_norm",
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
