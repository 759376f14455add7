"""`explain` prints Megatron-LM's load-balancing coefficient beside ours when the loss is applied.

Megatron-LM divides the Switch loss E · Σ_e f_e · P_e by k (its f_e sums to 1, ours to k), so its
`moe_aux_loss_coeff` is our `auxiliary_loss_coefficient` × `experts_per_token`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastmoe_cfg.cli import app
from fastmoe_cfg.explain import megatron_equivalent_lines
from fastmoe_cfg.schemas import MLPBaseConfig
from tests.conftest import load

runner = CliRunner()


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        pytest.param(
            "type: moe\nexperts: 8\nexperts_per_token: 2\n",
            "Megatron-LM equivalent: moe_aux_loss_coeff 0.02 = auxiliary_loss_coefficient 0.01 × experts_per_token 2 "
            "(Megatron-LM divides the load-balancing loss by k).",
            id="derived-0.01-top2",
        ),
        pytest.param(
            # Decimal product: 0.01 × 3 as floats is 0.030000000000000002.
            "type: moe\nexperts: 8\nexperts_per_token: 3\nauxiliary_loss_coefficient: 0.01\n",
            "Megatron-LM equivalent: moe_aux_loss_coeff 0.03 = auxiliary_loss_coefficient 0.01 × experts_per_token 3 "
            "(Megatron-LM divides the load-balancing loss by k).",
            id="set-0.01-top3",
        ),
        pytest.param(
            "type: moe\nexperts: 64\nexperts_per_token: 8\nauxiliary_loss_coefficient: 0.001\n",
            "Megatron-LM equivalent: moe_aux_loss_coeff 0.008 = auxiliary_loss_coefficient 0.001 × experts_per_token 8 "
            "(Megatron-LM divides the load-balancing loss by k).",
            id="olmoe-like",
        ),
        pytest.param(
            "type: moe\nexperts: 4\n",
            "Megatron-LM equivalent: moe_aux_loss_coeff 0.01 = auxiliary_loss_coefficient 0.01 × experts_per_token 1 "
            "(Megatron-LM divides the load-balancing loss by k).",
            id="top1-equal",
        ),
    ],
)
def test_megatron_coefficient_is_ours_times_k(yaml_text: str, expected: str) -> None:
    assert megatron_equivalent_lines(load(yaml_text)) == [expected]


@pytest.mark.parametrize(
    "yaml_text",
    [
        pytest.param("type: mlp\n", id="dense"),
        pytest.param("type: moe\nexperts: 4\nauxiliary_loss_coefficient: 0\n", id="coefficient-0"),
        pytest.param("type: moe\nexperts: 4\nrouting: aux_free\n", id="aux_free"),
        pytest.param("type: moe\nexperts: 4\nrouting: sinkhorn\n", id="sinkhorn"),
        pytest.param("type: moe\nexperts: 4\nrouting: balanced\n", id="balanced"),
    ],
)
def test_no_line_without_an_applied_load_balancing_loss(yaml_text: str) -> None:
    assert megatron_equivalent_lines(load(yaml_text)) == []


def test_explain_prints_the_line_after_the_rules(tmp_path: Path) -> None:
    path = tmp_path / "moe.yaml"
    path.write_text("type: moe\nexperts: 8\nexperts_per_token: 2\nauxiliary_loss_coefficient: 0.02\n")
    result = runner.invoke(app, ["explain", str(path), "--tier", "core"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    assert (
        "Megatron-LM equivalent: moe_aux_loss_coeff 0.04 = auxiliary_loss_coefficient\n"
        "  0.02 × experts_per_token 2 (Megatron-LM divides the load-balancing loss by k).\n"
    ) in result.stdout
    rules = result.stdout.index("Rules on the fields set here:")
    assert rules < result.stdout.index("Megatron-LM equivalent:") < result.stdout.index("Pass --hidden-size N")


def test_explain_prints_no_line_for_aux_free(tmp_path: Path) -> None:
    path = tmp_path / "moe.yaml"
    path.write_text("type: moe\nexperts: 8\nexperts_per_token: 2\nrouting: aux_free\n")
    result = runner.invoke(app, ["explain", str(path), "--tier", "core"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    assert "Megatron-LM" not in result.stdout.split("Rules on the fields set here:")[-1]



def test_a_hybrid_names_its_routed_branch() -> None:
    if "hybrid_moe" not in MLPBaseConfig.variants():
        pytest.skip("type: hybrid_moe has not landed")
    config = load("type: hybrid_moe\ndense: {intermediate_size: 64}\nrouted: {experts: 8, experts_per_token: 2}\n")
    assert megatron_equivalent_lines(config) == [
        "Megatron-LM equivalent: moe_aux_loss_coeff 0.02 = routed.auxiliary_loss_coefficient 0.01 × experts_per_token 2 "
        "(Megatron-LM divides the load-balancing loss by k)."
    ]
