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
    result = runner.invoke(app, ["validate", str(bad_file), "--format", "json"])
    assert result.exit_code == 1
    problems = json.loads(result.output)
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
    assert ok.exit_code == 0 and json.loads(ok.output) == []


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
    assert result.stdout.startswith(f"{path}:1:2: not valid UTF-8 (byte 0xff)")
    assert result.stderr == ""


# The declared rules of MoEMLPConfig, in order, as explain lists them.
MOE_RULES = [
    "activation gpt_oss_glu needs gated: true.",
    "activation_limit only applies with activation: gpt_oss_glu.",
    "Each token picks experts_per_token of the experts - shared_experts routed experts: experts_per_token + shared_experts <= experts.",
    "expert_groups divides the experts - shared_experts routed experts.",
    "With expert_groups > 1, each group holds at least 2 routed experts (a group's score sums its top 2).",
    "expert_groups > 1 needs routing aux_loss or aux_free.",
    "expert_groups_per_token <= expert_groups.",
    "With expert_groups > 1, the expert_groups_per_token kept groups hold at least experts_per_token experts.",
    "auxiliary_loss_coefficient other than 0 needs routing: aux_loss (the only routing with a load-balancing loss).",
    "bias_update_rate only applies with routing: aux_free.",
    "automatic_bias_update only applies with routing: aux_free.",
    "balanced_routing_noise only applies with routing: balanced.",
    "drop_policy only applies with a capacity_factor.",
    "shared_expert_intermediate_size only applies with shared_experts >= 1.",
    "shared_expert_gate needs shared_experts >= 1.",
    "router_weight_on_input needs experts_per_token = 1.",
    "router_weight_on_input needs a weight that is not renormalised to 1: normalize_expert_weights false.",
]


def test_explain_golden() -> None:
    result = run("explain", "examples/dense.yaml", "--tier", "core", "--tier", "performance")
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "examples/dense.yaml: MLPConfig (type: mlp)\n"
        "┏━━━━━━━━━━━━━━━━━━━┳━━━━━━━┳━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓\n"
        "┃ field             ┃ value ┃ source  ┃ description                                                ┃\n"
        "┡━━━━━━━━━━━━━━━━━━━╇━━━━━━━╇━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩\n"
        "│ core              │       │         │ What everyone sets: the variant and the main choices.      │\n"
        "│   activation      │ silu  │ derived │ Activation of the hidden layer (the gate's activation when │\n"
        "│                   │       │         │ gated). Derived: silu if gated, else gelu. (silu: SiLU     │\n"
        "│                   │       │         │ (swish): x·sigmoid(x); with gated, SwiGLU.)                │\n"
        "│   format_version  │ null  │ default │ Version of this config format (only 1 exists). None: the   │\n"
        "│                   │       │         │ current one.                                               │\n"
        "│   type            │ mlp   │ set     │ The MLP variant: mlp (dense, default) or moe (mixture of   │\n"
        "│                   │       │         │ experts).                                                  │\n"
        "├───────────────────┼───────┼─────────┼────────────────────────────────────────────────────────────┤\n"
        "│ performance       │       │         │ Changes speed or memory only, never results.               │\n"
        "│   recompute_level │ none  │ default │ What backward recomputes instead of storing. (none: Keep   │\n"
        "│                   │       │         │ every activation for backward.)                            │\n"
        "└───────────────────┴───────┴─────────┴────────────────────────────────────────────────────────────┘\n"
        "Rules:\n"
        "  activation gpt_oss_glu needs gated: true.\n"
        "  activation_limit only applies with activation: gpt_oss_glu.\n"
        "Pass --hidden-size N to see parameter counts, FLOPs per token and memory per expert.\n"
    )


def test_explain_summary_and_json() -> None:
    text = run("explain", "examples/mixtral_8x7b.yaml", "--hidden-size", "4096").stdout
    assert "│ total parameters                │                 1,409,318,912 │" in text
    assert "│ active parameters per token     │                   352,354,304 │" in text
    assert "│ weight memory per expert (bf16) │ 352,321,536 bytes (336.0 MiB) │" in text
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
    assert payload["rules"] == [{"path": "", "rule": rule} for rule in MOE_RULES]
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


def test_explain_text_shows_rules_and_hidden_expert_fields() -> None:
    text = run("explain", "examples/mixtral_8x7b.yaml").stdout
    assert (
        "Rules:\n"
        "  activation gpt_oss_glu needs gated: true.\n"
        "  activation_limit only applies with activation: gpt_oss_glu.\n"
        "  Each token picks experts_per_token of the experts - shared_experts routed experts:\n"
        "    experts_per_token + shared_experts <= experts.\n"
        "  expert_groups divides the experts - shared_experts routed experts.\n"
        "  With expert_groups > 1, each group holds at least 2 routed experts (a group's score sums its top\n"
        "    2).\n"
        "  expert_groups > 1 needs routing aux_loss or aux_free.\n"
        "  expert_groups_per_token <= expert_groups.\n"
        "  With expert_groups > 1, the expert_groups_per_token kept groups hold at least experts_per_token\n"
        "    experts.\n"
        "  bias_update_rate only applies with routing: aux_free.\n"
        "  automatic_bias_update only applies with routing: aux_free.\n"
        "  balanced_routing_noise only applies with routing: balanced.\n"
        "  drop_policy only applies with a capacity_factor.\n"
        "  shared_expert_intermediate_size only applies with shared_experts >= 1.\n"
        "  shared_expert_gate needs shared_experts >= 1.\n"
        "  router_weight_on_input needs experts_per_token = 1.\n"
    ) in text
    assert "2 expert-tier field(s) not shown: --all or --tier expert shows them." in text


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
    # The text table has a row per field, with the same value and source.
    table = run("explain", str(path), "--all").stdout
    for name, (value, source) in FAMILY_ROWS[text].items():
        if "." in name:
            continue  # nested rows are indented under their parent; the json rows above cover them
        shown = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        assert re.search(rf"^│   {name} +│ {re.escape(shown)} +│ {source} +│", table, re.M), name


def test_explain_invalid_file_exits_1(bad_file: Path) -> None:
    result = run("explain", str(bad_file))
    assert result.returncode == 1
    assert result.stderr.startswith(f"{bad_file}:3:1: experts_per_tokn: unknown field")
    as_json = run("explain", str(bad_file), "--format", "json")
    assert as_json.returncode == 1
    payload = json.loads(as_json.stdout)
    assert payload["file"] == str(bad_file) and [problem["line"] for problem in payload["problems"]] == [3, 4, 5]


def test_validate_reports_unreadable_files_and_goes_on(tmp_path: Path) -> None:
    result = run("validate", "/dev/zero", "examples/dense.yaml")
    assert result.returncode == 1
    assert result.stdout == (
        "/dev/zero: cannot read the file: not a regular file\n"
        "examples/dense.yaml: valid (MLPConfig, type: mlp)\n"
        "1 problem found\n"
    )


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
    assert len(json.loads(runner.invoke(app, ["validate", str(path), "--format", "json"]).output)) == 150


@pytest.mark.parametrize("variant", ["moe", "mlp"])
def test_init_writes_a_config_that_validates(tmp_path: Path, variant: str) -> None:
    out = tmp_path / "start.yaml"
    result = runner.invoke(app, ["init", "--type", variant, "-o", str(out)])
    assert result.exit_code == 0
    text = out.read_text()
    assert text.startswith("# A starter fastmoe_cfg config")
    assert f"type: {variant}\n" in text
    check = runner.invoke(app, ["validate", str(out), "--format", "json"])
    assert check.exit_code == 0 and json.loads(check.output) == []
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
