"""`fastmoe-cfg bench`: the table's rows, the JSON report's keys and values, the errors (tiny shapes: a few seconds)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fastmoe_cfg import bench
from fastmoe_cfg.cli import BENCH_DTYPES, app
from tests.conftest import ROOT
from tests.test_no_torch import BLOCK

torch = pytest.importorskip("torch")

EXAMPLES = ROOT / "examples"
SMALL = str(EXAMPLES / "moe_small.yaml")  # 4 experts, top-1
TINY = ["--hidden-size", "16", "--tokens", "32", "--repeats", "1", "--warmup", "0", "--device", "cpu"]
runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def bench_cli(*args: str):
    return runner.invoke(app, ["bench", *args], env={"COLUMNS": "120"})


def kernel_rows() -> list[str]:
    """The dropless rows on the CPU without TRITON_INTERPRET: one per kernel field value that runs here."""
    from fastmoe_cfg.schemas.mlp import MoEMLPConfig

    return ["dropless (torch)"] if "dropless_kernel" in MoEMLPConfig.model_fields else ["dropless"]


def test_bench_json_counts_ratios_and_loads(monkeypatch) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    result = bench_cli(SMALL, *TINY, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    explained = json.loads(runner.invoke(app, ["explain", SMALL, "--hidden-size", "16", "--format", "json"]).stdout)
    per_token = explained["summary"]["flops_per_token"]
    assert report["flops"] == {
        "per_token": per_token,
        "forward": 32 * per_token,
        "forward_backward": 3 * 32 * per_token,
        "convention": bench.FLOP_CONVENTION,
    }
    assert {key: report[key] for key in ("format", "file", "type", "hidden_size", "tokens", "dtype", "device", "repeats", "warmup", "memory")} == {
        "format": 1, "file": SMALL, "type": "moe", "hidden_size": 16, "tokens": 32, "dtype": "fp32", "device": "cpu", "repeats": 1,
        "warmup": 0, "memory": "saved_for_backward",
    }
    # The dense MLP has the experts' FLOPs: width k · intermediate (the router's 2·H·E per token are the difference).
    assert report["dense_intermediate_size"] == 256
    assert report["dense_flops_per_token"] == per_token - 2 * 16 * 4
    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows) == ["dense", "looped", *kernel_rows()]
    for name, row in rows.items():
        assert row["samples"] == 1
        assert row["forward_ms"] > 0 and row["forward_backward_ms"] >= row["forward_ms"]
        assert row["vs_dense"] > 0 and row["vs_looped"] > 0 and row["memory_bytes"] > 0
        flops = report["dense_flops_per_token"] if name == "dense" else per_token
        assert row["flops_per_token"] == flops
        assert row["forward_backward_tflops"] == pytest.approx(3 * 32 * flops / row["forward_backward_ms"] / 1e9, rel=1e-3)  # times rounded to 0.1 µs
    assert rows["dense"]["vs_dense"] == 1 and rows["looped"]["vs_looped"] == 1
    assert (rows["looped"]["implementation"], rows["looped"]["kernel"]) == ("looped", None)
    assert rows[kernel_rows()[0]]["implementation"] == "dropless"
    loads = report["loads"]
    assert len(loads["tokens_per_expert"]) == 4 and loads["assignments"] == sum(loads["tokens_per_expert"]) == 32 * 1
    assert [item["name"] for item in report["skipped"]] == (["dropless (triton)"] if kernel_rows() == ["dropless (torch)"] else [])


def test_bench_table_rows_and_load_chart() -> None:
    result = bench_cli(SMALL, *TINY)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{SMALL}: moe, hidden 16, 32 tokens, fp32 on cpu; median of 1 after 0 warm-up")
    header = next(line for line in lines if "implementation" in line)
    assert [cell.strip() for cell in header.strip("┃").split("┃")] == [
        "implementation", "fwd ms", "fwd+bwd ms", "TFLOP/s fwd", "TFLOP/s fwd+bwd", "vs dense", "vs looped", "saved for bwd",
    ]
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    assert [row[0] for row in rows] == ["dense", "looped", *kernel_rows()]
    assert rows[0][5] == "1.00x" and rows[1][6] == "1.00x"
    assert all(row[7].endswith(("KiB", " B")) for row in rows)
    chart = [line for line in lines if line.startswith("expert ")]
    assert len(chart) == 4 and sum(int(line.split()[2]) for line in chart) == 32
    assert "Tokens per routed expert, one forward (looped; 32 assignments):" in lines
    assert any(line.startswith("Useful FLOPs (explain's counts): 16,512 per token") for line in lines)


def test_bench_dense_mlp_is_one_row() -> None:
    result = bench_cli(str(EXAMPLES / "dense.yaml"), *TINY, "--format", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [(row["name"], row["vs_dense"], row["vs_looped"]) for row in report["rows"]] == [("mlp", 1.0, None)]
    assert report["loads"] is None and report["skipped"] == []


def test_bench_invalid_config_is_validates_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: moe\nexperts: 2\nexperts_per_tokn: 1\n")
    validated = runner.invoke(app, ["validate", str(bad)])
    result = bench_cli(str(bad), "--hidden-size", "16")
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == validated.stderr.replace("1 problem found\n", "")
    as_json = bench_cli(str(bad), "--hidden-size", "16", "--format", "json")
    assert (as_json.exit_code, as_json.stdout) == (1, runner.invoke(app, ["validate", str(bad), "--format", "json"]).stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([str(EXAMPLES / "stacks" / "alternating.yaml"), "--hidden-size", "16"], "fastmoe-cfg bench: error: bench measures a block of type moe or mlp, not stack: select one block of the stack with --key\n"),
        ([SMALL], "--hidden-size"),
        ([SMALL, "--hidden-size", "16", "--dtype", "fp8"], "'fp8' is not one of: fp32, bf16, fp16"),
        ([SMALL, "--hidden-size", "16", "--device", "tpu"], "fastmoe-cfg bench: error: --device tpu: bench runs on cpu, cuda or cuda:N\n"),
    ],
    ids=["stack", "no-hidden-size", "dtype", "device"],
)
def test_bench_usage_errors(args: list[str], message: str) -> None:
    result = bench_cli(*args)
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_bench_cuda_without_a_gpu_is_a_usage_error() -> None:
    result = bench_cli(SMALL, "--hidden-size", "16", "--device", "cuda")
    assert result.exit_code == 2
    assert result.stderr == "fastmoe-cfg bench: error: --device cuda: no CUDA device here (torch.cuda.is_available() is False)\n"


def test_bench_without_torch_exits_2_naming_the_install() -> None:
    code = BLOCK + (
        "from fastmoe_cfg.cli import app\n"
        f"app(['bench', {SMALL!r}, '--hidden-size', '16'], prog_name='fastmoe-cfg')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2
    assert result.stderr == f"fastmoe-cfg bench: error: {bench.NO_TORCH}\n"


def test_triton_row_needs_cuda_or_the_interpreter(monkeypatch) -> None:
    from fastmoe_cfg.config.loader import load
    from fastmoe_cfg.config.yaml_reader import read_yaml
    from fastmoe_cfg.schemas.stack import root_class

    config = load(root_class, read_yaml(Path(SMALL))).config
    if "dropless_kernel" not in type(config).model_fields:
        pytest.skip("this version has no dropless_kernel field")
    monkeypatch.setattr(bench, "triton_runs", lambda device_type: (device_type == "cuda", "reason"))
    names = [name for name, _ in bench.variants(config, "cpu")[0]]
    assert names == ["looped", "dropless (torch)"]
    chosen = dict(bench.variants(config, "cuda")[0])
    assert list(chosen) == ["looped", "dropless (torch)", "dropless (triton)"]
    assert [(variant.implementation.value, variant.dropless_kernel.value) for variant in chosen.values()] == [
        ("looped", "auto"), ("dropless", "torch"), ("dropless", "triton"),
    ]
    monkeypatch.undo()
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    assert bench.triton_runs("cpu")[0] is (__import__("importlib").util.find_spec("triton") is not None)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert bench.triton_runs("cpu")[0] is False


def test_load_chart_of_many_experts_is_one_character_each() -> None:
    loads = [0, 8, 4] + [2] * 61 + [8] * 6
    lines = bench.load_chart(loads)
    assert lines == [
        "experts   0- 63 | █▄" + "▂" * 61 + "|",
        "experts  64- 69 |██████|",
        "(one character per expert, full block = 8) min 0, mean 2.6, max 8 (max/mean 3.08)",
    ]


def test_bench_dtypes_are_the_library_s() -> None:
    assert BENCH_DTYPES == list(bench.DTYPES)


def test_implementations_share_one_set_of_weights_and_compute_the_same() -> None:
    from fastmoe_cfg.config.loader import load
    from fastmoe_cfg.config.yaml_reader import read_yaml
    from fastmoe_cfg.schemas.stack import root_class

    config = load(root_class, read_yaml(Path(SMALL))).config
    setup = bench.prepare(config, 16, tokens=32, device="cpu")
    looped, dropless = setup.layers["looped"], setup.layers[kernel_rows()[0]]
    assert all(
        parameter is dict(dropless.named_parameters())[name] and not parameter.is_meta for name, parameter in looped.named_parameters()
    )
    assert not any(buffer.is_meta for buffer in dropless.buffers())
    x, grad = bench.inputs(setup)
    outputs = [layer(x) for layer in (looped, dropless)]
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------ benchmarks/gpu.py
def gpu_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("benchmarks_gpu", ROOT / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_script_without_a_gpu_says_so_and_writes_nothing(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_script().main(["--out", str(tmp_path)]) == 0
    assert capsys.readouterr().err.startswith("no CUDA GPU here (torch.cuda.is_available() is False): nothing measured")
    assert list(tmp_path.iterdir()) == []


def test_gpu_script_dry_run_writes_the_report(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    script = gpu_script()
    assert script.main(["--dry-run", "--repeats", "1", "--warmup", "0", "--shapes", "fine-grained", "--out", str(tmp_path)]) == 0
    (report,) = tmp_path.glob("dry-run-*.md")
    text = report.read_text()
    assert text.startswith("# GPU benchmark, ") and "(dry run: tiny sizes on the CPU, not a measurement)" in text
    assert "| fine-grained | dropless (torch) | 0.00e+00 | 0.00e+00 | 0.00e+00 (router.weight) | passed |" in text.splitlines()
    section = text.split("## fine-grained (OLMoE): E=64, k=8, H=2048, I=1024, 96 tokens (dry run: intermediate_size=16, experts=16, H=64)")[1]
    names = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| ") and "implementation" not in line]
    assert names == ["dense", "looped", kernel_rows()[0]]
    data = json.loads(report.with_suffix(".json").read_text())
    assert [shape["name"] for shape in data["shapes"]] == ["fine-grained"] and data["peak"]["tflops"] > 0


def test_gpu_report_states_the_targets() -> None:
    script = gpu_script()

    def row(name: str, milliseconds: float, tflops: float) -> dict:
        return {
            "name": name, "forward_ms": milliseconds / 3, "forward_backward_ms": milliseconds, "forward_backward_tflops": tflops,
            "vs_dense": 1.0, "vs_looped": None, "memory_bytes": 2**30, "samples": 20,
        }

    report = {
        "memory": "peak_allocated", "loads": None, "skipped": [], "notes": [],
        "rows": [row("dense", 10.0, 600.0), row("dropless (torch)", 12.0, 500.0), row("dropless (triton)", 11.0, 550.0)],
    }
    errors = {"output": 1e-3, "input": 2e-3, "router.weight": 4e-2, "experts.layer_1.weight": 3e-3}
    run = {
        "date": "2026-01-01", "dry_run": False, "command": "python benchmarks/gpu.py", "seconds": 200.0, "environment": {"GPU": "H200"},
        "peak": {"tflops": 1000.0, "size": 8192, "by_size": {8192: 1000.0}},
        "shapes": [
            {"name": "mixtral", "title": "Mixtral", "tokens": 8192, "report": report,
             "checks": [{"name": "dropless (triton)", "errors": errors, "missing": [], "passed": True}]},
            {"name": "deepseek-v3", "title": "DeepSeek-V3", "tokens": 8192, "failed": "OutOfMemoryError: ...", "checks": []},
        ],
    }
    lines = script.markdown(run).splitlines()
    assert "| mixtral | dropless (triton) | 1.00e-03 | 2.00e-03 | 4.00e-02 (router.weight) | passed |" in lines
    assert "| dropless (triton) | 3.67 | 11.00 | 550 | 55% | 1.00x | - | 0.92x | 1.0 GiB | 20 |" in lines
    assert "Not measured: OutOfMemoryError: ..." in lines
    assert lines[-2:] == [
        "- mixtral: Triton 11.00 ms vs torch._grouped_mm 12.00 ms (0.92x): meets \"Triton faster than torch._grouped_mm\"",
        "- mixtral: Triton at 55% of the measured dense bf16 peak: meets \">= 50%\"",
    ]
