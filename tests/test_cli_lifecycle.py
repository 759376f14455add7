"""The commands of a config's life: diff (by tier, exit 0/3/4), upgrade, set, and stacks in validate and explain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastmoe_cfg.cli import app
from tests.conftest import ROOT

runner = CliRunner()
HF = ROOT / "tests" / "data" / "hf_configs"
STACKS = ROOT / "examples" / "stacks"

A = """\
format_version: 2
type: moe
experts: 8
experts_per_token: 2
z_loss_coefficient: 0.001
"""


def cli(*args: str, **env: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "100", **env})


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.yaml").write_text(A)
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nformat_version: 2\nz_loss_coefficient: 0.01\nrecompute_level: full\n")
    (tmp_path / "c.yaml").write_text("extends: a.yaml\nformat_version: 2\nexperts_per_token: 4\n")
    return tmp_path


@pytest.mark.parametrize("command", ["diff", "upgrade", "set"])
def test_help_has_an_example(command: str) -> None:
    result = cli(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output and f"fastmoe-cfg {command}" in result.output


# -------------------------------------------------------------------------------------------- diff
def test_diff_identical_is_exit_0(folder: Path) -> None:
    result = cli("diff", "a.yaml", "a.yaml")
    assert (result.exit_code, result.stdout) == (0, "--- a.yaml\n+++ a.yaml\nidentical\n")


def test_diff_ignores_the_format_version(tmp_path: Path) -> None:
    """A version-1 file and the same layer written as version 2 are identical (the loader migrated the first)."""
    (tmp_path / "v1.yaml").write_text("type: moe\nexperts: 8\nexperts_per_token: 2\n")
    (tmp_path / "v2.yaml").write_text("type: moe\nformat_version: 2\nexperts: 8\nexperts_per_token: 2\n")
    result = runner.invoke(app, ["diff", str(tmp_path / "v1.yaml"), str(tmp_path / "v2.yaml")])
    assert result.exit_code == 0 and result.output.endswith("identical\n"), result.output


def test_diff_outside_the_architecture_is_exit_3(folder: Path) -> None:
    result = cli("diff", "a.yaml", "b.yaml")
    assert result.exit_code == 3
    assert result.stdout == (
        "--- a.yaml\n"
        "+++ b.yaml\n"
        "feature:\n"
        "  z_loss_coefficient:\n"
        "    - 0.001 (set, a.yaml:5:1)\n"
        "    + 0.01 (set, b.yaml:3:1)\n"
        "performance:\n"
        "  recompute_level:\n"
        "    - none (default)\n"
        "    + full (set, b.yaml:4:1)\n"
        "2 differences: same checkpoint layout: no architecture field differs\n"
    )


def test_diff_in_the_architecture_is_exit_4_and_tier_filters(folder: Path) -> None:
    result = cli("diff", "a.yaml", "c.yaml")
    assert result.exit_code == 4
    assert result.stdout == (
        "--- a.yaml\n"
        "+++ c.yaml\n"
        "architecture:\n"
        "  experts_per_token:\n"
        "    - 2 (set, a.yaml:4:1)\n"
        "    + 4 (set, c.yaml:3:1)\n"
        "1 difference: checkpoints are not interchangeable: an architecture field differs\n"
    )
    filtered = cli("diff", "a.yaml", "c.yaml", "--tier", "feature")
    assert (filtered.exit_code, filtered.stdout.splitlines()[-1]) == (0, "identical in the tiers feature")


def test_diff_json(folder: Path) -> None:
    result = cli("diff", "a.yaml", "b.yaml", "--format", "json", "--tier", "feature")
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {
        "format": 1,
        "a": "a.yaml",
        "b": "b.yaml",
        "result": "same_layout",
        "differences": [
            {
                "path": "z_loss_coefficient",
                "layers": None,
                "tier": "feature",
                "a": {"value": 0.001, "source": "set", "where": "a.yaml:5:1"},
                "b": {"value": 0.01, "source": "set", "where": "b.yaml:3:1"},
            }
        ],
    }


def test_diff_invalid_input_is_1_and_a_bad_option_is_2(folder: Path) -> None:
    (folder / "bad.yaml").write_text("type: moe\nexperts: 0\n")
    result = cli("diff", "a.yaml", "bad.yaml")
    assert result.exit_code == 1 and result.stderr.startswith("bad.yaml:2:10: experts: must be >= 1, got 0\n")
    assert cli("diff", "a.yaml", "b.yaml", "--tier", "arch").exit_code == 2


def test_diff_stacks_layer_by_layer(folder: Path) -> None:
    (folder / "s.yaml").write_text(
        "type: stack\nformat_version: 2\nlayers: 4\nmlp: {type: moe, experts: 8}\n"
        "overrides:\n  - {layers: \"1-2\", set: {experts: 16}}\n"
    )
    (folder / "t.yaml").write_text("type: stack\nformat_version: 2\nlayers: 4\nmlp: {type: moe, experts: 8}\n")
    result = cli("diff", "s.yaml", "t.yaml")
    assert result.exit_code == 4
    assert result.stdout == (
        "--- s.yaml\n"
        "+++ t.yaml\n"
        "architecture:\n"
        "  layers 1-2: experts:\n"
        "    - 16 (set, s.yaml:6:27)\n"
        "    + 8 (set, t.yaml:4:18)\n"
        "1 difference: checkpoints are not interchangeable: an architecture field differs\n"
    )


def test_diff_against_hugging_face(folder: Path) -> None:
    stack = cli("diff", str(STACKS / "deepseek_v3.yaml"), str(HF / "deepseek_v3.json"), "--from-hf")
    assert (stack.exit_code, stack.stdout.splitlines()[-1]) == (0, "identical")
    changed = STACKS.joinpath("qwen3_30b_a3b.yaml").read_text() + 'overrides:\n  - {layers: "40-47", set: {experts_per_token: 4}}\n'
    (folder / "qwen.yaml").write_text(changed)
    result = cli("diff", "qwen.yaml", str(HF / "qwen3_30b_a3b.json"), "--from-hf")
    assert result.exit_code == 4
    assert result.stdout.splitlines()[2:6] == [
        "architecture:",
        "  layers 40-47: experts_per_token:",
        "    - 4 (set, qwen.yaml:24:29)",
        "    + 8 (set, HF num_experts_per_tok)",
    ]
    block = cli("diff", str(ROOT / "examples" / "qwen3_30b_a3b.yaml"), str(HF / "qwen3_30b_a3b.json"), "--from-hf", "--layer", "5")
    assert (block.exit_code, block.stdout.splitlines()[-1]) == (0, "identical")


# ------------------------------------------------------------------------------------ upgrade, set
OLD = """\
# a balanced layer
type: moe        # the variant
experts: 8
routing: balanced
jitter_eps: 0.1  # had no effect
"""


def test_upgrade_prints_the_current_version_and_warns(folder: Path) -> None:
    (folder / "old.yaml").write_text(OLD)
    result = cli("upgrade", "old.yaml")
    assert result.exit_code == 0
    assert result.stdout == "# a balanced layer\ntype: moe        # the variant\nformat_version: 2\nexperts: 8\nrouting: balanced\n"
    assert result.stderr == (
        "old.yaml:4:1: auxiliary_loss_coefficient: warning: its default changed in version 2: derived from routing: 0.01 "
        "with aux_loss, else 0 (version 1: 0.01 with every routing, applied only with aux_loss, so results are unchanged; "
        "the layer's statistics call the loss a monitoring value)\n"
        "old.yaml:5:1: jitter_eps: warning: removed (version 2): jitter_eps other than 0 had no effect with routing: "
        "balanced, which ignores the router's scores; version 1 accepted it, version 2 refuses it\n"
    )
    assert (folder / "old.yaml").read_text() == OLD  # not --in-place


def test_upgrade_in_place_then_already_current(folder: Path) -> None:
    (folder / "old.yaml").write_text(OLD)
    assert cli("upgrade", "old.yaml", "--in-place").exit_code == 0
    assert "format_version: 2\n" in (folder / "old.yaml").read_text()
    again = cli("upgrade", "old.yaml", "--in-place")
    assert (again.exit_code, again.stderr) == (0, "old.yaml: already version 2\n")


def test_set_writes_keeping_comments_and_the_current_version(folder: Path) -> None:
    (folder / "old.yaml").write_text(OLD)
    result = cli("set", "old.yaml", "experts=16", "pre_norm.type=rms_norm")
    assert result.exit_code == 0
    assert (folder / "old.yaml").read_text() == (
        "# a balanced layer\ntype: moe        # the variant\nformat_version: 2\nexperts: 16\nrouting: balanced\n"
        "pre_norm:\n  type: rms_norm\n"
    )
    assert result.stderr.endswith("wrote old.yaml\n")


def test_set_refuses_an_invalid_result_and_writes_nothing(folder: Path) -> None:
    result = cli("set", "a.yaml", "experts_per_token=20", "experts=4", "experts=6")
    assert result.exit_code == 1
    assert result.stderr == (
        "--set experts_per_token=20: experts_per_token: must satisfy experts_per_token + shared_experts <= experts (20 + 0 > 6)\n"
        "--set experts=4: experts: no effect: the later --set experts=6 replaces it (remove one of them)\n"
        "a.yaml: not changed\n"
    )
    assert (folder / "a.yaml").read_text() == A
    assert cli("set", "a.yaml", "experts").exit_code == 2


# -------------------------------------------------------------------------------- validate, explain
def test_validate_a_stack_and_the_warnings_of_an_old_file(folder: Path) -> None:
    (folder / "old.yaml").write_text("type: moe\nrouting: sinkhorn\n")
    result = cli("validate", str(STACKS / "deepseek_v3.yaml"), "old.yaml")
    assert result.exit_code == 0
    assert result.stdout == (
        f"{STACKS / 'deepseek_v3.yaml'}: valid (StackConfig, type: stack, 61 layers: 3 dense, 58 MoE)\n"
        "old.yaml: valid (MoEMLPConfig, type: moe)\n"
    )
    assert result.stderr.startswith("old.yaml:2:1: auxiliary_loss_coefficient: warning: its default changed in version 2")
    report = json.loads(cli("validate", "old.yaml", "--format", "json").stdout)
    assert [warning["path"] for warning in report["files"][0]["warnings"]] == ["auxiliary_loss_coefficient"]


def test_a_stack_error_names_the_layers(folder: Path) -> None:
    (folder / "s.yaml").write_text(
        "type: stack\nformat_version: 2\nlayers: 30\nmlp: {type: moe, experts: 8}\n"
        "overrides:\n  - {layers: \"10-20\", set: {experts_per_token: 9}}\n"
    )
    result = cli("validate", "s.yaml")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "s.yaml:6:48: layers 10-20: experts_per_token: must satisfy experts_per_token + shared_experts <= experts (9 + 0 > 8)"
    )


def test_explain_a_stack_at_80_columns() -> None:
    result = cli("explain", "examples/stacks/alternating.yaml", "--hidden-size", "2048", COLUMNS="80")
    assert result.exit_code == 0
    assert result.stdout == (
        "examples/stacks/alternating.yaml: StackConfig (type: stack), 24 layers: 12 dense, 12 MoE\n"
        "Layers (D dense, M MoE; groups of 10 from layer 0):\n"
        "  DMDMDMDMDM DMDMDMDMDM DMDM\n"
        "Blocks:\n"
        "  dense_mlp: layers 0, 2, ..., 22 (12), MLPConfig (type: mlp)\n"
        "    add_linear_biases: false, gated: true, intermediate_size: 5632\n"
        "  mlp: layers 1, 3, ..., 21 (11), MoEMLPConfig (type: moe)\n"
        "    add_linear_biases: false, gated: true, intermediate_size: 1408, experts: 16,\n"
        "    experts_per_token: 2, z_loss_coefficient: 0.001\n"
        "  mlp + overrides[0]: layer 23, MoEMLPConfig (type: moe)\n"
        "    add_linear_biases: false, gated: true, intermediate_size: 1408, experts: 16,\n"
        "    experts_per_token: 4, z_loss_coefficient: 0.001\n"
        "Whole model's MLP blocks, hidden_size=2048:\n"
        "  total parameters:            2,076,573,696\n"
        "  active parameters per token: 640,548,864\n"
        "  forward FLOPs per token:     1,281,097,728\n"
        "Per layer of each block:\n"
        "  dense_mlp (layers 0, 2, ..., 22):\n"
        "    total parameters:            34,603,008\n"
        "    active parameters per token: 34,603,008\n"
        "    forward FLOPs per token:     69,206,016\n"
        "  mlp (layers 1, 3, ..., 21):\n"
        "    total parameters:            138,444,800\n"
        "    active parameters per token: 17,334,272\n"
        "    forward FLOPs per token:     34,668,544\n"
        "  mlp + overrides[0] (layer 23):\n"
        "    total parameters:            138,444,800\n"
        "    active parameters per token: 34,635,776\n"
        "    forward FLOPs per token:     69,271,552\n"
    )
    assert max(len(line) for line in result.stdout.splitlines()) <= 88  # the heading names the file


def test_explain_a_stack_all_and_json() -> None:
    full = cli("explain", "examples/stacks/deepseek_v3.yaml", "--all", COLUMNS="80")
    lines = full.stdout.splitlines()
    assert full.exit_code == 0
    assert lines[lines.index("Every layer:") + 1 : lines.index("Every layer:") + 5] == [
        "  layer 0: D dense_mlp", "  layer 1: D dense_mlp", "  layer 2: D dense_mlp", "  layer 3: M mlp"
    ]
    assert "Block mlp (layers 3-60):" in lines
    payload = json.loads(cli("explain", "examples/stacks/deepseek_v3.yaml", "--hidden-size", "7168", "--format", "json").stdout)
    assert payload["map"] == "D" * 3 + "M" * 58
    assert [(block["block"], block["layers"]) for block in payload["blocks"]] == [("dense_mlp", "0-2"), ("mlp", "3-60")]
    assert payload["summary"]["total_parameters"] == 657_758_617_600


def test_explain_names_the_parent_file_of_a_value(folder: Path) -> None:
    result = cli("explain", "c.yaml", COLUMNS="80")
    assert "  experts: 8 (set in a.yaml:3:1, architecture)" not in result.stdout  # top level: no tier in the line
    assert "  experts: 8 (set in a.yaml:3:1)\n" in result.stdout
    assert "  experts_per_token: 4 (set)\n" in result.stdout


def test_the_lifecycle_commands_are_torch_free(folder: Path) -> None:
    """diff, upgrade, set, and validate / explain of a stack, in one process where importing torch fails."""
    import os
    import subprocess
    import sys

    from tests.test_no_torch import BLOCK, CHECK

    (folder / "old.yaml").write_text(OLD)
    runs = [
        ["diff", "a.yaml", "c.yaml"],
        ["diff", str(STACKS / "deepseek_v3.yaml"), str(HF / "deepseek_v3.json"), "--from-hf"],
        ["upgrade", "old.yaml"],
        ["set", "old.yaml", "experts=4"],
        ["validate", str(STACKS / "alternating.yaml")],
        ["explain", str(STACKS / "alternating.yaml"), "--hidden-size", "64", "--all"],
    ]
    code = BLOCK + "from fastmoe_cfg.cli import app\nimport sys\n"
    for argv in runs:
        code += f"try:\n    app({argv!r}, prog_name='fastmoe-cfg')\nexcept SystemExit as exc:\n    assert exc.code in (0, 4), ({argv!r}, exc.code)\n"
    result = subprocess.run([sys.executable, "-c", code + CHECK], capture_output=True, text=True, cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-2000:]


# ------------------------------------------------------------------------------------------ fuzzed
def test_diff_layer_without_from_hf_or_with_a_stack_is_a_usage_error(folder: Path) -> None:
    """Fuzzed: --layer was silently ignored without --from-hf, and with a stack A."""
    alone = cli("diff", "a.yaml", "b.yaml", "--layer", "1")
    assert alone.exit_code == 2 and alone.stderr.endswith(
        "Error: Invalid value for --layer: applies only with --from-hf (the HF decoder layer to compare)\n"
    )
    (folder / "s.yaml").write_text("type: stack\nformat_version: 2\nlayers: 4\nmlp: {type: moe, experts: 8}\n")
    stack = cli("diff", "s.yaml", str(HF / "mixtral_8x7b.json"), "--from-hf", "--layer", "1")
    assert stack.exit_code == 2 and stack.stderr.endswith(
        "Error: Invalid value for --layer: s.yaml is a stack, compared with every HF layer: remove --layer\n"
    )


def test_diff_a_stack_with_hugging_face_names_both_layer_counts(folder: Path) -> None:
    (folder / "s.yaml").write_text("type: stack\nformat_version: 2\nlayers: 4\nmlp: {type: moe, experts: 8}\n")
    result = cli("diff", "s.yaml", str(HF / "mixtral_8x7b.json"), "--from-hf")
    lines = result.stdout.splitlines()
    assert result.exit_code == 4
    assert lines[lines.index("  layers:") + 1 : lines.index("  layers:") + 3] == [
        "    - 4 (set, s.yaml:3:1)",
        "    + 32 (set, HF num_hidden_layers)",
    ]
    assert "HF HF" not in result.stdout  # a source already worded "HF ..." was prefixed twice


def test_set_format_version_other_than_current_is_a_usage_error(folder: Path) -> None:
    """Fuzzed: `set format_version=1` wrote format_version: 2, silently replacing the value asked for."""
    result = cli("set", "a.yaml", "format_version=1")
    assert result.exit_code == 2 and result.stderr.endswith(
        "Error: Invalid value for KEY=VALUE...: 'format_version=1': set writes the current format_version (2); "
        "to rewrite an older file, use fastmoe-cfg upgrade\n"
    )
    assert (folder / "a.yaml").read_text() == A
    assert cli("set", "a.yaml", "format_version=2").exit_code == 0


def test_set_keeps_the_layout_of_lists_and_adds_new_keys_last(folder: Path) -> None:
    """Fuzzed: `set` re-indented every block list of the file (`  - x` became `- x`) and put a new key first."""
    text = (
        "# a stack\ntype: stack\nformat_version: 2\nlayers: 4  # four\nmlp:\n  type: moe\n  experts: 8\n"
        "overrides:\n  - {layers: '1', set: {experts: 4}}\n  - layers: '2'\n    set:\n      experts: 6\n"
    )
    (folder / "s.yaml").write_text(text)
    assert cli("set", "s.yaml", "mlp.experts=16", "mlp.experts_per_token=4").exit_code == 0
    assert (folder / "s.yaml").read_text() == text.replace("experts: 8\n", "experts: 16\n  experts_per_token: 4\n")
    assert cli("set", "a.yaml", "pre_norm={type: rms_norm}").exit_code == 0
    assert (folder / "a.yaml").read_text() == A + "pre_norm:\n  type: rms_norm\n"


def test_set_and_upgrade_refuse_a_block_that_is_a_yaml_alias(folder: Path) -> None:
    """Fuzzed: `set --key model.mlp` where `mlp: *b` edited the anchor, so `other: *b` changed silently too."""
    text = "defaults: &b\n  type: moe\n  format_version: 2\n  experts: 8\nmodel:\n  mlp: *b\n  other: *b\n"
    (folder / "m.yaml").write_text(text)
    message = (
        "m.yaml: model.mlp is a YAML alias of a mapping that other places of the file share (&anchor / *alias): the edit "
        "would change them too; edit the anchor's mapping itself, or copy it into the block first; not changed\n"
    )
    result = cli("set", "m.yaml", "--key", "model.mlp", "experts=16")
    assert (result.exit_code, result.stderr) == (1, message) and (folder / "m.yaml").read_text() == text
    (folder / "m.yaml").write_text(text.replace("  format_version: 2\n", ""))  # version 1: upgrade edits the block
    result = cli("upgrade", "m.yaml", "--key", "model.mlp", "--in-place")
    assert (result.exit_code, result.stderr.splitlines()[-1] + "\n") == (1, message)
    (folder / "n.yaml").write_text("model:\n  mlp:\n    type: moe\n    experts: 8\n  other: {type: mlp}\n")
    assert cli("set", "n.yaml", "--key", "model.mlp", "experts=16").exit_code == 0  # no alias: edited
    assert "experts: 16" in (folder / "n.yaml").read_text()


def test_upgrade_in_place_on_an_unwritable_file_is_a_usage_error_of_file(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unwritable FILE (a read-only file; tests may run as root, so the write is made to fail) names FILE, not --output."""
    (folder / "old.yaml").write_text(OLD)

    def refuse(self: Path, *args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_text", refuse)
    result = cli("upgrade", "old.yaml", "--in-place")
    assert result.exit_code == 2 and result.stderr.endswith("Error: Invalid value for FILE: cannot write old.yaml: Permission denied\n")
    assert (folder / "old.yaml").read_text() == OLD
    assert cli("set", "old.yaml", "experts=4").stderr.endswith("Error: Invalid value for FILE: cannot write old.yaml: Permission denied\n")


def test_set_and_upgrade_with_a_key_into_a_stack_are_usage_errors(folder: Path) -> None:
    """Fuzzed: `set s.yaml --key mlp ...` wrote format_version into the block of a version-1 stack, which the
    stack then refused (its blocks have the stack's version)."""
    text = "type: stack\nlayers: 2\nmlp: {type: moe, experts: 4}\n"
    (folder / "s.yaml").write_text(text)
    result = cli("set", "s.yaml", "--key", "mlp", "experts=8")
    assert result.exit_code == 2 and result.stderr.endswith(
        "Error: Invalid value for --key: 'mlp' is inside a stack, whose blocks have the stack's format_version: "
        "give the paths from its root instead (mlp.KEY=VALUE)\n"
    )
    upgrade = cli("upgrade", "s.yaml", "--key", "mlp")
    assert upgrade.exit_code == 2 and upgrade.stderr.endswith(
        "Error: Invalid value for --key: 'mlp' is inside a stack, whose blocks have the stack's format_version: "
        "upgrade the whole stack: without --key\n"
    )
    assert (folder / "s.yaml").read_text() == text
    assert cli("set", "s.yaml", "mlp.experts=8").exit_code == 0
    assert (folder / "s.yaml").read_text() == "type: stack\nformat_version: 2\nlayers: 2\nmlp: {type: moe, experts: 8}\n"


def test_diff_json_of_an_invalid_input_is_the_json_report(folder: Path) -> None:
    """Fuzzed: `diff --format json` of an invalid input printed text problems and nothing on standard output."""
    (folder / "bad.yaml").write_text("type: moe\nexperts: 0\n")
    (folder / "other.json").write_text('{"a": 1}\n')
    result = cli("diff", "a.yaml", "bad.yaml", "--format", "json")
    assert result.exit_code == 1 and json.loads(result.stdout) == {
        "format": 1,
        "files": [
            {
                "file": "bad.yaml",
                "valid": False,
                "problems": [
                    {
                        "message": "must be >= 1, got 0", "path": "experts", "file": "bad.yaml", "line": 2, "column": 10,
                        "suggestion": None, "override": None,
                    }
                ],
            }
        ],
    }
    hf = cli("diff", "a.yaml", "other.json", "--from-hf", "--format", "json")
    assert hf.exit_code == 1 and json.loads(hf.stdout)["files"][0]["problems"][0]["path"] == "model_type"
