"""The command line: exit codes, output texts, code frames, --help, no tracebacks."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastmoe_cfg.cli import app
from fastmoe_cfg.schemas import MoEMLPConfig
from tests.conftest import ROOT

EXAMPLES = ROOT / "examples"
runner = CliRunner()

BAD = """\
type: moe
experts: 2
experts_per_tokn: 1
experts_per_token: 3
routing: sinkhorm
"""


def run(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "COLUMNS": "100", **env}
    return subprocess.run([sys.executable, "-m", "fastmoe_cfg", *args], capture_output=True, text=True, cwd=cwd, env=environment)


def cli(*args: str, input: str | None = None, **env: str):
    """In-process run (fast): `.stdout`, `.stderr`, `.exit_code`; `env` as `run` takes it (COLUMNS=100 unless given)."""
    return runner.invoke(app, list(args), input=input, env={"COLUMNS": "100", **env})


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD)
    return path


def test_validate_ok() -> None:
    result = runner.invoke(app, ["validate", str(EXAMPLES / "mixtral_8x7b.yaml"), str(EXAMPLES / "dense.yaml")])
    assert result.exit_code == 0
    assert result.output == (
        f"{EXAMPLES / 'mixtral_8x7b.yaml'}: valid (MoEMLPConfig, type: moe)\n"
        f"{EXAMPLES / 'dense.yaml'}: valid (MLPConfig, type: mlp)\n"
    )


def test_validate_prints_every_problem_with_a_code_frame(bad_file: Path) -> None:
    result = runner.invoke(app, ["validate", str(bad_file)])
    assert result.exit_code == 1
    assert result.output == (
        f"{bad_file}:3:1: experts_per_tokn: unknown field (did you mean experts_per_token?)\n"
        "    3 | experts_per_tokn: 1\n"
        "      | ^\n"
        f"{bad_file}:4:1: experts_per_token: must satisfy experts_per_token + shared_experts <= experts (3 + 0 > 2)\n"
        "    4 | experts_per_token: 3\n"
        "      | ^\n"
        f"{bad_file}:5:10: routing: expected one of aux_loss, sinkhorn, aux_free, balanced; got string 'sinkhorm' (did you mean sinkhorn?)\n"
        "    5 | routing: sinkhorm\n"
        "      |          ^\n"
        "3 problems found\n"
    )


def test_validate_json(bad_file: Path) -> None:
    result = cli("validate", str(bad_file), "examples/dense.yaml", "--format", "json")
    assert result.exit_code == 1 and result.stderr == ""
    report = json.loads(result.stdout)
    assert report["format"] == 1
    assert [(entry["file"], entry["valid"]) for entry in report["files"]] == [(str(bad_file), False), ("examples/dense.yaml", True)]
    problems = report["files"][0]["problems"]
    assert report["files"][1]["problems"] == []
    assert problems[0] == {
        "file": str(bad_file),
        "line": 3,
        "column": 1,
        "path": "experts_per_tokn",
        "message": "unknown field",
        "suggestion": "experts_per_token",
        "override": None,
    }
    assert [problem["line"] for problem in problems] == [3, 4, 5]
    ok = runner.invoke(app, ["validate", str(EXAMPLES / "dense.yaml"), "--format", "json"])
    assert ok.exit_code == 0
    assert json.loads(ok.output) == {"format": 1, "files": [{"file": str(EXAMPLES / "dense.yaml"), "valid": True, "problems": []}]}


def test_validate_key_and_overrides() -> None:
    nested = str(EXAMPLES / "model_file" / "model.yaml")
    assert runner.invoke(app, ["validate", nested, "--key", "model.mlp"]).exit_code == 0
    result = runner.invoke(app, ["validate", nested, "--key", "model.mlp", "--set", "experts=abc"])
    assert result.exit_code == 1
    assert result.output == "--set experts=abc: model.mlp.experts: expected an integer, got string 'abc'\n1 problem found\n"


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "Usage: fastmoe-cfg"),
        (["validate"], "Missing argument"),
        (["validate", "missing.yaml"], "does not exist"),
        (["validate", "examples/dense.yaml", "--set", "experts"], "'experts': expected KEY=VALUE with a dotted KEY"),
        (["validate", "examples/dense.yaml", "--format", "xml"], "Invalid value for '--format'"),
        (["explain", "examples/dense.yaml", "--tier", "core2"], "Invalid value for '--tier'"),
        (["explain", "examples/dense.yaml", "--hidden-size", "0"], "Invalid value for '--hidden-size'"),
        (["frobnicate"], "No such command"),
        (["validate", "examples/dense.yaml", "--key", "model..mlp"], "'model..mlp': expected a dotted path of keys"),
        (["schema", "-o", "/nonexistent/dir/schema.json"], "cannot write /nonexistent/dir/schema.json: No such file or directory"),
        (["init", "--type", "transformer"], "Invalid value for '--type'"),
        (["convert"], "Missing option '--from-hf'"),
        (["convert", "--from-hf", "no/such/config.json"], "'no/such/config.json' does not exist"),
        (["convert", "--from-hf", "tests/data/hf_configs/olmoe_1b_7b.json", "--layer", "-1"], "Invalid value for '--layer'"),
        (["convert", "--from-hf", "tests/data/hf_configs/olmoe_1b_7b.json", "-o", "examples/olmoe_1b_7b.yaml"], "examples/olmoe_1b_7b.yaml exists; pass --force"),
    ],
)
def test_usage_errors_exit_2(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize("command", ["validate", "explain", "schema", "init", "convert"])
def test_help_has_an_example(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"fastmoe-cfg {command}" in result.output


def test_garbage_file_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "garbage.yaml"
    path.write_bytes(b"\x00\xff\xfe{[}: \x01")
    result = run("validate", str(path))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{path}:1:2: not valid UTF-8 (byte 0xff)")
    assert result.stdout == ""


def test_explain_golden_at_80_columns() -> None:
    # Not a terminal (and narrower than 100 columns): one field per line, the description below it.
    result = cli("explain", "examples/dense.yaml", "--tier", "core", "--tier", "performance", COLUMNS="80")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "examples/dense.yaml: MLPConfig (type: mlp)\n"
        "\n"
        "core: What everyone sets: the variant and the main choices.\n"
        "  activation: silu (derived)\n"
        "      Activation of the hidden layer (the gate's activation when gated).\n"
        "      Derived: silu if gated, else gelu. (silu: SiLU (swish): x·sigmoid(x); with\n"
        "      gated, SwiGLU.)\n"
        "  format_version: null (default)\n"
        "      Version of this config format (current 2; a file without it is version 1).\n"
        "  type: mlp (set)\n"
        "      The MLP variant: mlp (dense, default), moe (mixture of experts) or\n"
        "      hybrid_moe (a dense MLP and routed experts, summed).\n"
        "\n"
        "performance: Changes speed or memory only, never results.\n"
        "  recompute_level: none (default)\n"
        "      What backward recomputes instead of storing. (none: Keep every activation\n"
        "      for backward.)\n"
        "\n"
        "Pass --hidden-size N to see parameter counts, FLOPs per token and memory per\n"
        "expert.\n"
    )


def test_explain_golden_at_120_columns_piped() -> None:
    result = cli("explain", "examples/dense.yaml", "--tier", "core", "--tier", "performance", COLUMNS="120")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "examples/dense.yaml: MLPConfig (type: mlp)\n"
        "\n"
        "core: What everyone sets: the variant and the main choices.\n"
        "  activation: silu (derived)\n"
        "      Activation of the hidden layer (the gate's activation when gated). Derived: silu if gated, else gelu. (silu: SiLU\n"
        "      (swish): x·sigmoid(x); with gated, SwiGLU.)\n"
        "  format_version: null (default)\n"
        "      Version of this config format (current 2; a file without it is version 1).\n"
        "  type: mlp (set)\n"
        "      The MLP variant: mlp (dense, default), moe (mixture of experts) or hybrid_moe (a dense MLP and routed experts,\n"
        "      summed).\n"
        "\n"
        "performance: Changes speed or memory only, never results.\n"
        "  recompute_level: none (default)\n"
        "      What backward recomputes instead of storing. (none: Keep every activation for backward.)\n"
        "\n"
        "Pass --hidden-size N to see parameter counts, FLOPs per token and memory per expert.\n"
    )


def test_explain_golden_table_in_a_120_column_terminal() -> None:
    # A terminal at least 100 columns wide gets the table (TTY_COMPATIBLE makes rich treat the pipe as one).
    result = cli("explain", "examples/dense.yaml", "--tier", "core", "--tier", "performance", COLUMNS="120", TTY_COMPATIBLE="1", NO_COLOR="1")
    assert result.exit_code == 0, result.stderr
    assert re.sub(r"\x1b\[[0-9;]*m", "", result.stdout) == (
        "examples/dense.yaml: MLPConfig (type: mlp)\n"
        "┏━━━━━━━━━━━━━━━━━━━┳━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓\n"
        "┃ field             ┃ value ┃ source  ┃ description                                                                    ┃\n"
        "┡━━━━━━━━━━━━━━━━━━━╇━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩\n"
        "│ core              │       │         │ What everyone sets: the variant and the main choices.                          │\n"
        "│   activation      │ silu  │ derived │ Activation of the hidden layer (the gate's activation when gated). Derived:    │\n"
        "│                   │       │         │ silu if gated, else gelu. (silu: SiLU (swish): x·sigmoid(x); with gated,       │\n"
        "│                   │       │         │ SwiGLU.)                                                                       │\n"
        "│   format_version  │ null  │ default │ Version of this config format (current 2; a file without it is version 1).     │\n"
        "│   type            │ mlp   │ set     │ The MLP variant: mlp (dense, default), moe (mixture of experts) or hybrid_moe  │\n"
        "│                   │       │         │ (a dense MLP and routed experts, summed).                                      │\n"
        "├───────────────────┼───────┼─────────┼────────────────────────────────────────────────────────────────────────────────┤\n"
        "│ performance       │       │         │ Changes speed or memory only, never results.                                   │\n"
        "│   recompute_level │ none  │ default │ What backward recomputes instead of storing. (none: Keep every activation for  │\n"
        "│                   │       │         │ backward.)                                                                     │\n"
        "└───────────────────┴───────┴─────────┴────────────────────────────────────────────────────────────────────────────────┘\n"
        "Pass --hidden-size N to see parameter counts, FLOPs per token and memory per expert.\n"
    )


def test_readme_example_at_80_columns() -> None:
    # The README's first example, piped at 80 columns: no line wider than the terminal, and short (569 lines before).
    result = cli("explain", "examples/mixtral_8x7b.yaml", "--hidden-size", "4096", COLUMNS="80")
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(lines) == 233  # 166 before issue 19's nine fields, the Megatron-LM equivalent and format_version; 214 before issue 16's four
    assert result.stdout.endswith(
        "\n"
        "Rules on the fields set here:\n"
        "  activation gpt_oss_glu needs gated: true.\n"
        "  Each token picks experts_per_token of the experts - shared_experts routed\n"
        "    experts: experts_per_token + shared_experts <= experts.\n"
        "  auxiliary_loss_coefficient other than 0 needs routing: aux_loss (the only\n"
        "    routing with a load-balancing loss).\n"
        "  router_score_function other than softmax has no effect with routing: balanced.\n"
        "  normalize_expert_weights false has no effect with routing: balanced.\n"
        "  router_dtype other than float32 has no effect with routing: balanced.\n"
        "Megatron-LM equivalent: moe_aux_loss_coeff 0.04 = auxiliary_loss_coefficient\n"
        "  0.02 × experts_per_token 2 (Megatron-LM divides the load-balancing loss by k).\n"
        "3 expert-tier field(s) not shown: --all or --tier expert shows them.\n"
        "Per layer, hidden_size=4096:\n"
        "  total parameters:                1,409,318,912\n"
        "  active parameters per token:     352,354,304\n"
        "  forward FLOPs per token:         704,708,608\n"
        "  router parameters:               32,768\n"
        "  parameters per routed expert:    176,160,768\n"
        "  weight memory per expert (bf16): 352,321,536 bytes (336.0 MiB)\n"
    )


def test_explain_takes_hidden_size_beside_the_key(tmp_path: Path) -> None:
    with_width = cli("explain", "examples/model_file/model.yaml", "--key", "model.mlp", "--format", "json")
    assert json.loads(with_width.stdout)["summary"]["hidden_size"] == 2048
    assert "Per layer, hidden_size=2048 (from model.hidden_size):\n" in cli("explain", "examples/model_file/model.yaml", "--key", "model.mlp").stdout
    # --hidden-size wins; a mapping without hidden_size gives no counts.
    given = cli("explain", "examples/model_file/model.yaml", "--key", "model.mlp", "--hidden-size", "64", "--format", "json")
    assert json.loads(given.stdout)["summary"]["hidden_size"] == 64
    path = tmp_path / "nested.yaml"
    path.write_text("model:\n  width: 8\n  mlp: {type: moe}\n")
    assert json.loads(cli("explain", str(path), "--key", "model.mlp", "--format", "json").stdout)["summary"] is None


def test_explain_summary_and_json() -> None:
    result = runner.invoke(app, ["explain", str(EXAMPLES / "mixtral_8x7b.yaml"), "--hidden-size", "4096", "--format", "json", "--dtype", "fp32"])
    payload = json.loads(result.output)
    assert payload["summary"]["total_parameters"] == 8 * 3 * 4096 * 14336 + 8 * 4096
    assert payload["summary"]["bytes_per_expert"] == 4 * 3 * 4096 * 14336
    rows = {row["path"]: row for row in payload["fields"]}
    assert rows["activation"] == {
        "path": "activation", "value": "silu", "source": "set", "tier": "core",
        "description": "Activation of the hidden layer (the gate's activation when gated).", "derived": None,
        "value_description": "SiLU (swish): x·sigmoid(x); with gated, SwiGLU.",
    }
    # The rules on the fields the file sets (a rule's first field is the one it constrains).
    set_here = {"activation", "experts_per_token", "auxiliary_loss_coefficient", "router_score_function", "normalize_expert_weights", "router_dtype"}
    assert payload["rules"] == [{"path": "", "rule": rule.doc} for rule in MoEMLPConfig.rules() if rule.fields[0] in set_here]
    assert len(payload["rules"]) == 6
    assert rows["experts"]["value"] == 8 and rows["shared_experts"]["source"] == "default"
    assert "implementation" not in rows  # expert tier only with --all


def test_explain_all_expands_nested_fields() -> None:
    result = runner.invoke(app, ["explain", str(EXAMPLES / "moe_small.yaml"), "--all", "--format", "json"])
    rows = {row["path"]: row for row in json.loads(result.output)["fields"]}
    assert rows["implementation"]["tier"] == "expert"
    assert rows["router.weight.initialization"]["value"] == {"type": "normal", "std": 0.02, "mean": 0.0, "min": None, "max": None}
    assert rows["router.weight.initialization.std"] == {
        "path": "router.weight.initialization.std", "value": 0.02, "source": "set", "tier": "feature",
        "description": "Standard deviation.", "derived": None, "value_description": None,
    }
    assert rows["pre_norm.epsilon"]["value"] == 1e-6
    feature = runner.invoke(app, ["explain", str(EXAMPLES / "moe_small.yaml"), "--tier", "feature", "--format", "json"])
    assert {row["tier"] for row in json.loads(feature.output)["fields"]} == {"feature"}
    # Filtered and expanded: feature-tier fields under architecture-tier parents are listed too.
    nested = runner.invoke(app, ["explain", str(EXAMPLES / "moe_small.yaml"), "--tier", "feature", "--all", "--format", "json"])
    paths = [row["path"] for row in json.loads(nested.output)["fields"]]
    assert "router.weight.initialization.std" in paths and "layer_1.weight.lr_scale" in paths
    assert "layer_1" not in paths


# Every routing field of issue 6, set: aux_free with groups, capacity, gpt_oss_glu and the shared expert options ...
FAMILY_SET = """\
type: moe
experts: 9
shared_experts: 1
experts_per_token: 2
gated: true
activation: gpt_oss_glu
activation_limit: 5.0
router_score_function: sigmoid
normalize_expert_weights: false
routed_scaling_factor: 2.5
routing: aux_free
bias_update_rate: 0.01
automatic_bias_update: true
expert_groups: 4
expert_groups_per_token: 2
expert_group_score: max
shared_expert_intermediate_size: 64
shared_expert_gate: {enabled: true}
router_bias: {enabled: true}
router_weight_on_input: false
capacity_factor: 1.25
drop_policy: position
sequence_auxiliary_loss_coefficient: 0.0001
router_dtype: float64
"""
# ... and the one that only applies with balanced routing.
FAMILY_SET_BALANCED = "type: moe\nexperts: 4\nrouting: balanced\nbalanced_routing_noise: 0.25\n"
# The same fields left to their defaults, or derived from routing aux_free, a capacity_factor, gpt_oss_glu and groups.
FAMILY_DERIVED = "type: moe\nexperts: 8\nrouting: aux_free\ncapacity_factor: 1.0\ngated: true\nactivation: gpt_oss_glu\nexpert_groups: 2\n"
# path: (value in --format json, source), per YAML above.
FAMILY_ROWS = {
    FAMILY_SET: {
        "activation_limit": (5.0, "set"),
        "router_score_function": ("sigmoid", "set"),
        "normalize_expert_weights": (False, "set"),
        "routed_scaling_factor": (2.5, "set"),
        "bias_update_rate": (0.01, "set"),
        "automatic_bias_update": (True, "set"),
        "expert_groups": (4, "set"),
        "expert_groups_per_token": (2, "set"),
        "expert_group_score": ("max", "set"),
        "shared_expert_intermediate_size": (64, "set"),
        "shared_expert_gate.enabled": (True, "set"),
        "router_bias.enabled": (True, "set"),
        "router_weight_on_input": (False, "set"),
        "capacity_factor": (1.25, "set"),
        "drop_policy": ("position", "set"),
        "sequence_auxiliary_loss_coefficient": (0.0001, "set"),
        "router_dtype": ("float64", "set"),
        "balanced_routing_noise": (None, "derived"),
    },
    FAMILY_SET_BALANCED: {
        "balanced_routing_noise": (0.25, "set"),
        "auxiliary_loss_coefficient": (0.0, "derived"),
        "bias_update_rate": (None, "derived"),
        "automatic_bias_update": (None, "derived"),
    },
    FAMILY_DERIVED: {
        "activation_limit": (7.0, "derived"),
        "router_score_function": ("softmax", "derived"),
        "normalize_expert_weights": (True, "derived"),
        "routed_scaling_factor": (1.0, "default"),
        "bias_update_rate": (0.001, "derived"),
        "automatic_bias_update": (False, "derived"),
        "expert_groups": (2, "set"),
        "expert_groups_per_token": (2, "derived"),
        "expert_group_score": ("top2_sum", "derived"),
        "shared_expert_intermediate_size": (None, "default"),
        "shared_expert_gate.enabled": (None, "default"),
        "router_bias.enabled": (None, "default"),
        "router_weight_on_input": (False, "default"),
        "capacity_factor": (1.0, "set"),
        "drop_policy": ("probability", "derived"),
        "sequence_auxiliary_loss_coefficient": (0.0, "default"),
        "router_dtype": ("float32", "default"),
        "balanced_routing_noise": (None, "derived"),
    },
}


def test_explain_routing_cases_cover_every_new_field() -> None:
    from tests.schemas.test_mlp import FAMILY_FIELDS

    for text in (FAMILY_SET, FAMILY_DERIVED):
        assert {name.split(".")[0] for name in FAMILY_ROWS[text]} == set(FAMILY_FIELDS)


@pytest.mark.parametrize("text", list(FAMILY_ROWS), ids=["set", "set balanced", "derived"])
def test_explain_shows_every_routing_field_with_value_and_source(tmp_path: Path, text: str) -> None:
    path = tmp_path / "family.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["explain", str(path), "--all", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {row["path"]: row for row in json.loads(result.output)["fields"]}
    assert {name: (rows[name]["value"], rows[name]["source"]) for name in FAMILY_ROWS[text]} == FAMILY_ROWS[text]
    # The text has a line per field, with the same value and source.
    text_output = run("explain", str(path), "--all").stdout
    for name, (value, source) in FAMILY_ROWS[text].items():
        if "." in name:
            continue  # nested rows are indented under their parent; the json rows above cover them
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        assert re.search(rf"^  {name}: {re.escape(shown)} \({source}\)$", text_output, re.M), name


def test_explain_invalid_file_exits_1(bad_file: Path) -> None:
    result = run("explain", str(bad_file))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{bad_file}:3:1: experts_per_tokn: unknown field")
    as_json = run("explain", str(bad_file), "--format", "json")
    assert as_json.returncode == 1 and as_json.stderr == ""
    payload = json.loads(as_json.stdout)
    assert payload["format"] == 1 and len(payload["files"]) == 1
    entry = payload["files"][0]
    assert (entry["file"], entry["valid"]) == (str(bad_file), False)
    assert [problem["line"] for problem in entry["problems"]] == [3, 4, 5]


def test_validate_reports_unreadable_files_and_goes_on(tmp_path: Path) -> None:
    result = run("validate", "/dev/zero", "examples/dense.yaml")
    assert result.returncode == 1
    assert result.stderr == "/dev/zero: cannot read the file: not a regular file\n1 problem found\n"
    assert result.stdout == "examples/dense.yaml: valid (MLPConfig, type: mlp)\n"


def test_long_lines_and_control_characters_in_code_frames(tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text("type: moe\nrouting: " + "x" * 300 + " sink\n")
    lines = runner.invoke(app, ["validate", str(path)]).output.splitlines()
    assert lines[1] == "    2 | routing: " + "x" * 91 + "..."
    assert lines[2] == "      |          ^"
    path.write_text('type: moe\nrouting: "\x1b[31mred"\n')
    assert runner.invoke(app, ["validate", str(path)]).output.splitlines()[1] == '    2 | routing: "?[31mred"'


def test_problem_count_is_capped_in_text_mode(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text("".join(f"unknown_{index}: 1\n" for index in range(150)))
    text = runner.invoke(app, ["validate", str(path)]).output
    assert "... and 50 more (--format json lists them all)\n150 problems found\n" in text
    assert len(json.loads(runner.invoke(app, ["validate", str(path), "--format", "json"]).output)["files"][0]["problems"]) == 150


@pytest.mark.parametrize("variant", ["moe", "mlp"])
def test_init_writes_a_config_that_validates(tmp_path: Path, variant: str) -> None:
    out = tmp_path / "start.yaml"
    result = runner.invoke(app, ["init", "--type", variant, "-o", str(out)])
    assert result.exit_code == 0
    text = out.read_text()
    assert text.startswith("# A starter fastmoe_cfg config")
    assert f"type: {variant}\n" in text
    check = runner.invoke(app, ["validate", str(out), "--format", "json"])
    assert check.exit_code == 0 and json.loads(check.output)["files"][0]["valid"]
    again = run("init", "-o", str(out))
    assert again.returncode == 2 and "exists; pass --force" in again.stderr
    assert runner.invoke(app, ["init", "-o", str(out), "--force"]).exit_code == 0


def test_init_to_stdout_lists_every_field() -> None:
    from fastmoe_cfg.schemas import MoEMLPConfig

    text = runner.invoke(app, ["init"]).output
    for name in MoEMLPConfig.model_fields:
        assert f"{name}: " in text, name


def test_python_dash_m_and_console_script() -> None:
    result = run("validate", "examples/moe_small.yaml")
    assert result.returncode == 0 and result.stdout == "examples/moe_small.yaml: valid (MoEMLPConfig, type: moe)\n"


def test_version() -> None:
    from fastmoe_cfg import __version__

    result = cli("--version")
    assert (result.exit_code, result.stdout, result.stderr) == (0, f"fastmoe-cfg {__version__}\n", "")


def test_validate_reads_standard_input() -> None:
    ok = cli("validate", "-", input="type: moe\nexperts: 4\n")
    assert (ok.exit_code, ok.stdout) == (0, "<stdin>: valid (MoEMLPConfig, type: moe)\n")
    bad = cli("validate", "-", input="type: moe\nexperts: x\n")
    assert bad.exit_code == 1 and bad.stdout == ""
    assert bad.stderr == (
        "<stdin>:2:10: experts: expected an integer, got string 'x'\n"
        "    2 | experts: x\n"
        "      |          ^\n"
        "1 problem found\n"
    )


def test_validate_a_directory(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.yaml").write_text("type: moe\n")
    (tmp_path / "sub" / "b.yml").write_text("type: mlp\nexperts: 2\n")
    (tmp_path / "notes.txt").write_text("not a config\n")
    result = cli("validate", str(tmp_path), "--format", "json")
    assert result.exit_code == 1
    files = json.loads(result.stdout)["files"]
    assert [(entry["file"], entry["valid"]) for entry in files] == [(str(tmp_path / "a.yaml"), True), (str(tmp_path / "sub" / "b.yml"), False)]
    assert files[1]["problems"][0]["message"] == "unknown field for type: mlp (a field of type: moe)"
    empty = tmp_path / "empty"
    empty.mkdir()
    usage = cli("validate", str(empty))
    assert usage.exit_code == 2 and f"'{empty}' is a directory without .yaml or .yml files" in usage.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["explain", "examples/dense.yaml", "--tier", "arch"], "'arch' is not one of: core, architecture, feature, performance, expert, deprecated (did you mean architecture?)"),
        (["validate", "examples/dense.yaml", "--format", "jsn"], "'jsn' is not one of: text, json (did you mean json?)"),
        (["explain", "examples/dense.yaml", "--hidden-size", "abc"], "Invalid value for '--hidden-size': 'abc' is not an integer"),
        (["explain", "examples/dense.yaml", "--dtype", "bf61"], "'bf61' is not one of: fp32, bf16, fp16, fp8 (did you mean bf16?)"),
        (["init", "--type", "MoE"], "'MoE' is not one of: hybrid_moe, mlp, moe (did you mean moe?)"),
    ],
)
def test_usage_errors_have_a_did_you_mean_and_no_pydantic_wording(args: list[str], message: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2 and message in result.stderr
    assert "Value error" not in result.stderr and "Input should be" not in result.stderr


def test_problems_go_to_standard_error_in_every_command(bad_file: Path, tmp_path: Path) -> None:
    hf = tmp_path / "config.json"
    hf.write_text('{"model_type": "mixtral", "hidden_size": "x"}')
    for args in (["validate", str(bad_file)], ["explain", str(bad_file)], ["convert", "--from-hf", str(hf)]):
        result = cli(*args)
        assert result.exit_code == 1 and result.stdout == "", args
        assert result.stderr.startswith((f"{bad_file}:3:1: ", f"{hf}:1:")), args


def test_dtype_choices_are_the_counted_ones() -> None:
    # cli.py writes the --dtype choices out (the counts module is imported by `explain` only).
    from fastmoe_cfg import cli
    from fastmoe_cfg.schemas.counts import DTYPE_BYTES

    assert cli.DTYPES == list(DTYPE_BYTES)
