"""extends: merge rules, the file/line/column of every value across the chain, located errors, unused overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fastmoe_cfg.config.errors import ConfigError
from fastmoe_cfg.config.extends import MAX_CHAIN
from fastmoe_cfg.config.loader import load
from fastmoe_cfg.config.yaml_reader import read_yaml
from fastmoe_cfg.explain import where_text
from fastmoe_cfg.schemas.stack import root_class

BASE = """\
format_version: 2
type: moe
experts: 8
experts_per_token: 2
pre_norm: {type: layer_norm, epsilon: 1.0e-6}
layer_1: {bias: {enabled: false}, weight: {lr_scale: 0.5}}
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # file names in messages are relative, as a user types them
    (tmp_path / "base.yaml").write_text(BASE)
    return tmp_path


def write(name: str, text: str) -> str:
    Path(name).parent.mkdir(parents=True, exist_ok=True)
    Path(name).write_text(text)
    return name


def loaded(name: str, **kwargs):
    return load(root_class, read_yaml(name), **kwargs)


def errors(name: str, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        loaded(name, **kwargs)
    return str(info.value)


def test_merge_rules_and_provenance(folder: Path) -> None:
    write(
        "sub/child.yaml",
        "extends: ../base.yaml\nformat_version: 2\nexperts_per_token: 4\npre_norm: {type: rms_norm}\nlayer_1: {weight: {lr_scale: 2.0}}\n",
    )
    result = loaded("sub/child.yaml")
    config = result.config
    assert (config.experts, config.experts_per_token) == (8, 4)  # inherited, overridden
    assert config.pre_norm.type == "rms_norm" and config.pre_norm.epsilon == 1e-5  # a changed type replaces: no inherited epsilon
    assert config.layer_1.bias.enabled is False and config.layer_1.weight.lr_scale == 2.0  # mappings merge
    assert where_text(result.source, ("experts",)) == "base.yaml:3:1"
    assert where_text(result.source, ("experts_per_token",)) == "sub/child.yaml:3:1"
    assert where_text(result.source, ("layer_1", "bias", "enabled")) == "base.yaml:6:18"
    assert where_text(result.source, ("layer_1", "weight", "lr_scale")) == "sub/child.yaml:5:20"
    assert where_text(result.source, ("pre_norm", "epsilon")) is None


def test_several_parents_left_to_right_and_a_key(folder: Path) -> None:
    write("model.yaml", "model:\n  hidden_size: 64\n  mlp: {type: moe, experts: 16, shared_experts: 2}\n")
    write("child.yaml", "extends: [base.yaml, {file: model.yaml, key: model.mlp}]\nformat_version: 2\n")
    config = loaded("child.yaml").config
    assert (config.experts, config.shared_experts, config.experts_per_token) == (16, 2, 2)


def test_an_error_points_at_the_file_that_wrote_the_value(folder: Path) -> None:
    write("child.yaml", "extends: base.yaml\nformat_version: 2\nexperts: 2\nshared_experts: 1\n")
    assert errors("child.yaml") == (
        "base.yaml:4:1: experts_per_token: must satisfy experts_per_token + shared_experts <= experts (2 + 1 > 2)"
    )


def test_extends_problems_golden(folder: Path) -> None:
    write("a.yaml", "extends: b.yaml\ntype: moe\n")
    write("b.yaml", "extends: [a.yaml, missing.yaml, {file: base.yaml, key: model.mlp}, {fil: x}, 3]\n")
    write("mlp.yaml", "extends: base.yaml\ntype: mlp\n")
    assert errors("a.yaml") == (
        "b.yaml:1:11: extends[0]: extends a.yaml: a cycle (a.yaml -> b.yaml -> a.yaml)\n"
        f"b.yaml:1:19: extends[1]: extends missing.yaml: cannot read missing.yaml: {os.strerror(2)}\n"
        "b.yaml:1:40: extends[2].file: extends base.yaml: key model.mlp: no key 'model' in the document\n"
        "b.yaml:1:68: extends[3]: unknown key 'fil' in an extends entry; expected file and key (did you mean file?)\n"
        "b.yaml:1:78: extends[4]: expected a file name or {file: NAME, key: DOTTED.KEY}, got integer 3"
    )
    assert errors("mlp.yaml") == (
        "mlp.yaml:1:10: extends: extends base.yaml: a config of type moe, this file is type mlp; a parent must be of the same type"
    )


def test_chains_are_at_most_16_deep(folder: Path) -> None:
    for index in range(MAX_CHAIN + 1):
        write(f"c{index}.yaml", f"extends: c{index + 1}.yaml\n")
    write(f"c{MAX_CHAIN + 1}.yaml", "type: moe\nformat_version: 2\n")
    assert errors("c0.yaml") == "c15.yaml:1:10: extends: extends c16.yaml: chains of extends are at most 16 files deep"
    assert loaded("c2.yaml").config.type == "moe"


def test_a_version_1_parent_is_migrated_with_its_own_warnings(folder: Path) -> None:
    write("old.yaml", "type: moe\nrouting: sinkhorn\nauxiliary_loss_coefficient: 0.01\n")
    write("new.yaml", "extends: old.yaml\nformat_version: 2\nexperts: 4\n")
    result = loaded("new.yaml")
    assert result.config.auxiliary_loss_coefficient == 0.0
    assert [(warning.file, warning.line, warning.path) for warning in result.warnings] == [
        ("old.yaml", 3, "auxiliary_loss_coefficient")
    ]


def test_an_override_replaced_by_a_later_one_is_an_error(folder: Path) -> None:
    overrides = ["pre_norm.epsilon=1e-5", "pre_norm=null", "experts=4", "experts=6"]
    assert errors("base.yaml", overrides=overrides) == (
        "--set pre_norm.epsilon=1e-5: pre_norm.epsilon: no effect: the later --set pre_norm=null replaces it (remove one of them)\n"
        "--set experts=4: experts: no effect: the later --set experts=6 replaces it (remove one of them)"
    )
    assert loaded("base.yaml", overrides=["pre_norm=null", "pre_norm.type=rms_norm"]).config.pre_norm.type == "rms_norm"


def test_the_json_schema_accepts_extends_at_the_root() -> None:
    import jsonschema

    from fastmoe_cfg.config.schema import json_schema
    from fastmoe_cfg.schemas import MLPBaseConfig

    validator = jsonschema.Draft202012Validator(json_schema(MLPBaseConfig))
    assert validator.is_valid({"extends": "base.yaml", "type": "moe"})
    assert validator.is_valid({"extends": ["a.yaml", {"file": "m.yaml", "key": "model.mlp"}], "type": "stack", "layers": 2, "mlp": {}})
    assert not validator.is_valid({"extends": [{"fil": "a.yaml"}]})


def test_a_diamond_of_parents_is_bounded(folder: Path) -> None:
    from fastmoe_cfg.config.extends import MAX_FILES

    for level in range(12):  # each file extends the next one twice: 4096 reads without a bound
        write(f"d{level}.yaml", f"extends: [d{level + 1}.yaml, d{level + 1}.yaml]\n")
    write("d12.yaml", "type: moe\nformat_version: 2\n")
    message = errors("d0.yaml")
    assert f"more than {MAX_FILES} parent files in all; not read" in message


def test_a_parent_that_gives_nothing_or_cannot_be_a_file_name_golden(folder: Path) -> None:
    """Fuzzed: an empty or comment-only parent was silently skipped (its key too); a NUL in a name crashed."""
    write("empty.yaml", "")
    write("comment.yaml", "# only a comment\n")
    write("child.yaml", 'extends: [empty.yaml, {file: comment.yaml, key: model.mlp}, "a\\0b", {file: "a\\0b"}]\ntype: moe\n')
    assert errors("child.yaml") == (
        "child.yaml:1:11: extends[0]: extends empty.yaml: empty.yaml is empty; expected a mapping of fields\n"
        "child.yaml:1:30: extends[1].file: extends comment.yaml: comment.yaml is empty; expected a mapping of fields\n"
        "child.yaml:1:61: extends[2]: expected a file name or {file: NAME, key: DOTTED.KEY}, got string 'a\\x00b'\n"
        "child.yaml:1:69: extends[3]: expected a file name or {file: NAME, key: DOTTED.KEY}, got a mapping"
    )


def test_a_version_1_child_of_a_version_1_parent_warns_once_per_change(folder: Path) -> None:
    write("old.yaml", "type: moe\nrouting: sinkhorn\n")
    write("older.yaml", "extends: old.yaml\nexperts: 4\n")  # both version 1: the parent's values were migrated twice
    assert [(warning.file, warning.line, warning.path) for warning in loaded("older.yaml").warnings] == [
        ("old.yaml", 2, "auxiliary_loss_coefficient")
    ]


def test_extends_inside_a_mapping_says_it_is_read_at_the_root_only(folder: Path) -> None:
    """Fuzzed: extends in a nested mapping or at a --key selection was a bare "unknown field"."""
    write("model.yaml", "model:\n  mlp:\n    extends: ../base.yaml\n    type: moe\n")
    write("nested.yaml", "extends: base.yaml\nformat_version: 2\npre_norm: {extends: base.yaml}\n")
    message = "unknown field: extends is read at the root of a file only (not inside a mapping, nor at a --key)"
    assert errors("model.yaml", key="model.mlp") == f"model.yaml:3:5: model.mlp.extends: {message}"
    assert errors("nested.yaml") == f"nested.yaml:3:12: pre_norm.extends: {message}"
