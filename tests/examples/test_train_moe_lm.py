"""examples/train_moe_lm.py: a few steps write the metrics and plots it promises, and --compare trains the three variants."""

from __future__ import annotations

import importlib.util
import json
import math
import struct
import sys
from pathlib import Path

import pytest

from fastmoe_cfg import load_config
from tests.conftest import ROOT

torch = pytest.importorskip("torch")
pytest.importorskip("matplotlib", reason="the example's plots need matplotlib: pip install -e '.[dev]'")

SCRIPT = ROOT / "examples" / "train_moe_lm.py"
CONFIG = ROOT / "examples" / "train_moe_lm.yaml"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_moe_lm", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


TINY = """\
model:
  hidden_size: 32
  layers: 2
  heads: 2
  mlp: {type: moe, experts: 4, experts_per_token: 2, intermediate_size: 32, gated: true, add_linear_biases: false}
train: {batch_size: 4, sequence_length: 32}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """A smaller model than the example's, for the tests that check more than one run."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def run(example, *argv: str) -> int:
    default = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: a second thread mostly waits, and on a busy machine for long
    try:
        with torch.random.fork_rng():  # the example seeds torch's global generator: leave it as the other tests expect
            return example.main(list(argv))
    finally:
        torch.set_num_threads(default)


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 300 and height >= 200, (path, width, height)
    assert data[-8:-4] == b"IEND", path  # written to the end


def test_a_short_run_writes_metrics_and_plots(example, tmp_path: Path) -> None:
    assert run(example, "--seed", "0", "--steps", "3", "--eval-batches", "1", "--out", str(tmp_path)) == 0
    settings = example.read_settings(CONFIG)
    mlp = load_config(CONFIG, key="model.mlp")
    routed, k = mlp.experts - mlp.shared_experts, mlp.experts_per_token
    tokens = settings.batch_size * settings.sequence_length

    metrics = json.loads((tmp_path / "metrics.json").read_text())
    steps = metrics["steps"]
    assert [entry["step"] for entry in steps] == [1, 2, 3]
    for entry in steps:
        assert set(entry) == {"step", "loss", "tokens_per_expert", "max_over_mean_load", "aux_losses"}
        assert math.isfinite(entry["loss"]) and 0 < entry["loss"] < 10
        assert len(entry["tokens_per_expert"]) == len(entry["max_over_mean_load"]) == len(entry["aux_losses"]) == settings.layers
        for counts, balance, losses in zip(entry["tokens_per_expert"], entry["max_over_mean_load"], entry["aux_losses"]):
            assert len(counts) == routed and all(isinstance(count, int) and count >= 0 for count in counts)
            assert sum(counts) == tokens * k  # every token routed to k experts, none masked
            assert balance == pytest.approx(max(counts) / (sum(counts) / routed)) and balance >= 1
            assert {"load_balancing_loss", "z_loss"} <= set(losses) and all(math.isfinite(value) for value in losses.values())
    assert steps[0]["loss"] == pytest.approx(math.log(256), abs=0.5)  # an untrained byte model: about uniform
    summary = metrics["summary"]
    assert summary["steps"] == 3 and math.isfinite(summary["eval_loss"])
    assert metrics["mlp_config"]["experts"] == mlp.experts
    for name in ("loss.png", "expert_load.png"):
        assert_png(tmp_path / name)


def test_the_same_seed_gives_the_same_run(example, tiny: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert run(example, "--config", str(tiny), "--seed", "3", "--steps", "2", "--out", str(tmp_path / name)) == 0
    a, b = (json.loads((tmp_path / name / "metrics.json").read_text())["steps"] for name in ("a", "b"))
    assert a == b


def test_compare_trains_dense_aux_loss_and_aux_free(example, tiny: Path, tmp_path: Path) -> None:
    assert run(example, "--config", str(tiny), "--steps", "2", "--compare", "--out", str(tmp_path)) == 0
    table = json.loads((tmp_path / "compare.json").read_text())
    assert [summary["label"] for summary in table["runs"]] == ["dense", "aux_loss", "aux_free"]
    mlp = load_config(tiny, key="model.mlp")
    dense = json.loads((tmp_path / "dense" / "metrics.json").read_text())
    assert dense["mlp_config"]["type"] == "mlp"
    assert dense["mlp_config"]["intermediate_size"] == mlp.experts_per_token * mlp.intermediate_size  # equal active FLOPs
    assert dense["steps"][0]["tokens_per_expert"] == []
    for name, routing in (("aux_loss", "aux_loss"), ("aux_free", "aux_free")):
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert metrics["mlp_config"]["routing"] == routing and len(metrics["steps"]) == 2
        assert_png(tmp_path / name / "expert_load.png")
    # Per token, the dense MLP has the MoE layer's active expert parameters (the router's E·H per layer aside).
    settings = example.read_settings(tiny)
    runs = {summary["label"]: summary for summary in table["runs"]}
    router = settings.layers * (mlp.experts - mlp.shared_experts) * settings.hidden_size
    for name in ("aux_loss", "aux_free"):
        assert runs["dense"]["active_parameters_per_token"] + router == runs[name]["active_parameters_per_token"]
        assert runs["dense"]["parameters"] < runs[name]["parameters"]
    assert_png(tmp_path / "compare_loss.png")


def test_a_bad_override_is_reported_not_trained(example, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(example, "--set", "experts=abc", "--out", str(tmp_path)) == 1
    assert "experts=abc" in capsys.readouterr().err
    assert not (tmp_path / "metrics.json").exists()


def test_the_guide_shows_the_example_config() -> None:
    guide = (ROOT / "fastmoe_cfg" / "docs_gen" / "assets" / "train-moe-lm.md").read_text()
    assert f"```yaml file=train_moe_lm.yaml\n{CONFIG.read_text()}```\n" in guide  # the site validates this copy
