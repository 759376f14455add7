"""The GPU run, one command: the Triton kernels checked at real sizes, then timed against torch._grouped_mm and the loop.

On a machine with a CUDA GPU, installing nothing, in under 8 minutes (compilation and autotuning included):

1. the dense bf16 peak of this GPU, measured: torch.mm of square bf16 matrices (4096, 8192 and 16384), the best
   median; every "% of peak" below is useful TFLOP/s over this number, not a datasheet's;
2. for each shape, in bf16, on one set of weights (`fastmoe_cfg.bench.prepare` ties them): the layer with
   `dropless_kernel: triton` and with `dropless_kernel: torch` (torch._grouped_mm) against
   `implementation: looped`, one forward+backward on the same input: output, input gradient and every
   parameter gradient, as ||a - b|| / ||b|| (tolerance TOLERANCE: bf16 rounds each product's output to 8 bits);
3. then `fastmoe_cfg.bench.measure` at that shape: an equal-FLOP dense MLP, looped, dropless (torch) and
   dropless (triton), interleaved rounds, medians (the loop with fewer rounds: LOOPED_REPEATS);
4. with the time left, the kernel unit tests compiled on this GPU (`pytest tests/layers/test_kernels.py`).

Shapes (the examples' configs, so the routing is the model's): Mixtral 8x7B (E=8, k=2, H=4096, I=14336, 8192
tokens), OLMoE, a fine-grained shape (E=64, k=8, H=2048, I=1024, 16384 tokens), DeepSeek-V3 (E=256 + 1 shared,
k=8, 8 groups of which 4 kept, sigmoid scores, H=7168, I=2048, 8192 tokens). The report goes to
`benchmarks/results/gpu-<date>.md` (and the same data as .json beside it).

Without a CUDA GPU it says so and exits 0, measuring nothing. `--dry-run` runs every step but the unit tests at tiny
sizes on the CPU in float32, to check this script (the Triton rows only when TRITON_INTERPRET=1 is set: Triton
3.9's interpreter computes tl.dot of bfloat16 tiles wrongly, hence float32), and writes `dry-run-<date>.md`.

    python benchmarks/gpu.py [--repeats 20] [--out benchmarks/results] [--dry-run]
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

DEADLINE_S = 450  # the whole run stays under 8 minutes: no shape starts after SHAPE_START_S, the unit tests get what is left
SHAPE_START_S = 330
TOLERANCE = 2e-2  # ||a - b|| / ||b|| in bf16: each kernel rounds its outputs to 8 bits, in other places than the loop
ROUTER_TOLERANCE = 5e-2  # the router's gradient sums products of bf16 outputs and output gradients: cancellation
LOOPED_REPEATS = 5
# name -> (example file, hidden size, tokens, title)
SHAPES = {
    "mixtral": ("examples/mixtral_8x7b.yaml", 4096, 8192, "Mixtral 8x7B: E=8, k=2, H=4096, I=14336"),
    "fine-grained": ("examples/olmoe_1b_7b.yaml", 2048, 16384, "fine-grained (OLMoE): E=64, k=8, H=2048, I=1024"),
    "deepseek-v3": ("examples/deepseek_v3.yaml", 7168, 8192, "DeepSeek-V3: E=256 + 1 shared, k=8, 8 groups (4 kept), H=7168, I=2048"),
}
# --dry-run: the same configs, tiny (hidden, tokens, overrides)
DRY = {
    "mixtral": (64, 96, ["intermediate_size=48"]),
    "fine-grained": (64, 96, ["intermediate_size=16", "experts=16"]),
    "deepseek-v3": (64, 96, ["intermediate_size=16", "experts=17"]),
}
PEAK_SIZES = (4096, 8192, 16384)
DRY_PEAK_SIZES = (64, 128)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="example: python benchmarks/gpu.py --repeats 20")
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds per shape (medians); the loop runs at most %d" % LOOPED_REPEATS)
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="folder of the report")
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated subset of {','.join(SHAPES)}")
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, no unit tests: checks this script")
    args = parser.parse_args(argv)
    args.shapes = [name.strip() for name in args.shapes.split(",") if name.strip()]
    unknown = set(args.shapes) - set(SHAPES)
    if unknown or not args.shapes:
        parser.error(f"unknown shapes: {', '.join(sorted(unknown)) or '(none given)'}")
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def environment(torch, device) -> dict[str, str]:
    """What the report names: the machine and the versions."""
    from fastmoe_cfg import __version__

    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "not installed"
    info = {
        "torch": torch.__version__,
        "triton": triton_version,
        "fastmoe_cfg": __version__,
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "host CPUs": str(os.cpu_count()),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info = {
            "GPU": f"{properties.name}, compute capability {properties.major}.{properties.minor}, "
            f"{properties.total_memory / 2**30:.0f} GiB, {properties.multi_processor_count} SMs",
            "CUDA (torch build)": str(torch.version.cuda),
            **info,
        }
    else:
        info = {"device": f"CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads", **info}
    return info


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def elapsed_ms(torch, device, function, repeats: int) -> float:
    """Median milliseconds of `function()` after 2 untimed calls (CUDA events on a GPU)."""
    for _ in range(2):
        function()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            function()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            function()
            times.append(1000 * (time.perf_counter() - begin))
    times.sort()
    return times[len(times) // 2]


def dense_peak(torch, device, dtype, sizes) -> dict[str, object]:
    """The best median TFLOP/s of torch.mm on square matrices of `sizes` (2·n³ FLOPs each)."""
    results = {}
    for size in sizes:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        milliseconds = elapsed_ms(torch, device, lambda: torch.mm(a, b), 20)
        results[size] = 2 * size**3 / milliseconds / 1e9
    best = max(results, key=results.get)
    return {"tflops": results[best], "size": best, "by_size": results}


def relative_error(actual, expected) -> float:
    actual, expected = actual.float(), expected.float()
    norm = expected.norm().item()
    return (actual - expected).norm().item() / norm if norm else (actual - expected).norm().item()


def check(torch, setup) -> list[dict[str, object]]:
    """One forward+backward of each MoE row against looped's: relative errors of the output and of every gradient."""
    from fastmoe_cfg import bench

    x, grad = bench.inputs(setup)

    def run(layer):
        layer.zero_grad(set_to_none=True)
        x.grad = None
        out = layer(x)
        out.backward(grad)
        grads = {"input": x.grad}
        grads.update({name: parameter.grad for name, parameter in layer.named_parameters() if parameter.grad is not None})
        return out.detach(), grads

    names = [name for name in setup.layers if name not in ("dense", "looped")]
    if "looped" not in setup.layers:
        return [{"name": name, "error": "no looped layer to compare with"} for name in names]
    out, grads = run(setup.layers["looped"])
    reference = {"output": out, **{name: value.clone() for name, value in grads.items()}}
    rows = []
    for name in names:
        try:
            out, grads = run(setup.layers[name])
            errors = {"output": relative_error(out, reference["output"])}
            errors.update({key: relative_error(grads[key], value) for key, value in reference.items() if key != "output" and key in grads})
            missing = sorted(set(reference) - set(errors))
            passed = not missing and all(error <= (ROUTER_TOLERANCE if key.startswith("router") else TOLERANCE) for key, error in errors.items())
            rows.append({"name": name, "errors": errors, "missing": missing, "passed": passed})
        except Exception as exc:  # a kernel that fails to compile or run: reported, and the row is not timed
            rows.append({"name": name, "error": f"{type(exc).__name__}: {str(exc)[:500]}", "passed": False})
            setup.layers.pop(name)
    for layer in setup.layers.values():
        layer.zero_grad(set_to_none=True)
    x.grad = None
    del reference
    return rows


def run_shape(torch, name: str, args, device) -> dict[str, object]:
    from fastmoe_cfg import bench
    from fastmoe_cfg.config.loader import load_file
    from fastmoe_cfg.schemas import MLPBaseConfig

    example, hidden, tokens, title = SHAPES[name]
    overrides: list[str] = []
    if args.dry_run:
        hidden, tokens, overrides = DRY[name]
    config = load_file(MLPBaseConfig, ROOT / example, overrides=overrides)
    dtype = "fp32" if args.dry_run else "bf16"
    started = time.perf_counter()
    setup = bench.prepare(config, hidden, tokens=tokens, dtype=dtype, device=str(device))
    log(f"{name}: built {', '.join(setup.layers)} ({time.perf_counter() - started:.1f} s); checking against looped")
    checks = check(torch, setup)
    log(f"{name}: checked ({time.perf_counter() - started:.1f} s); timing")
    report = bench.measure(setup, repeats=args.repeats, warmup=args.warmup, looped_repeats=min(LOOPED_REPEATS, args.repeats))
    log(f"{name}: timed ({time.perf_counter() - started:.1f} s)")
    del setup
    return {
        "name": name, "title": title, "example": example, "overrides": overrides, "hidden_size": hidden, "tokens": tokens,
        "checks": checks, "report": report.to_json(), "seconds": time.perf_counter() - started,
    }


def unit_tests(seconds: float) -> dict[str, object]:
    """pytest tests/layers/test_kernels.py on this GPU, within `seconds`: the summary line and the failures."""
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/layers/test_kernels.py"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=seconds)
    except subprocess.TimeoutExpired:
        return {"command": " ".join(command[1:]), "summary": f"stopped after {seconds:.0f} s (the time left)", "passed": None}
    lines = result.stdout.strip().splitlines()
    failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))]
    return {"command": " ".join(command[1:]), "summary": lines[-1] if lines else result.stderr[-300:], "failures": failures, "passed": result.returncode == 0}


# ------------------------------------------------------------------------------------------ the report
def _fmt(value, digits: int = 2, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def markdown(run: dict[str, object]) -> str:
    """The report of one run (the data `main` collects) as Markdown."""
    from fastmoe_cfg.bench import format_bytes

    peak = run["peak"]
    lines = [
        f"# GPU benchmark, {run['date']}" + (" (dry run: tiny sizes on the CPU, not a measurement)" if run["dry_run"] else ""),
        "",
        f"Command: `{run['command']}`; wall time {run['seconds']:.0f} s.",
        "",
        *[f"- {key}: {value}" for key, value in run["environment"].items()],
        "",
        f"Dense bf16 peak, **measured in this run**: {peak['tflops']:.3g} TFLOP/s (torch.mm of two [{peak['size']}, {peak['size']}] "
        "bf16 matrices, median of 20; best of sizes "
        + ", ".join(f"{size}: {value:.3g}" for size, value in peak["by_size"].items())
        + "). Every \"% of peak\" below is useful TFLOP/s over this number.",
        "",
        "Useful FLOPs are the counts `fastmoe-cfg explain` prints (forward = tokens x flops_per_token, forward+backward = 3 x "
        "forward); times are medians of interleaved rounds, forward+backward unless named fwd.",
        "",
        f"## Correctness at the benchmark sizes ({'fp32' if run['dry_run'] else 'bf16'}, against `implementation: looped`)",
        "",
        f"Relative errors ||a - b|| / ||b|| of one forward+backward on the same weights and input; tolerance {TOLERANCE:g} "
        f"({ROUTER_TOLERANCE:g} for the router's gradients).",
        "",
        "| shape | implementation | output | input grad | largest parameter grad error (which) | result |",
        "|---|---|---|---|---|---|",
    ]
    for shape in run["shapes"]:
        for item in shape.get("checks", []):
            if "error" in item:
                lines.append(f"| {shape['name']} | {item['name']} | - | - | {item['error']} | **failed** |")
                continue
            errors = dict(item["errors"])
            output, input_grad = errors.pop("output"), errors.pop("input", None)
            worst = max(errors, key=errors.get) if errors else None
            result = "passed" if item["passed"] else "**failed**" + (f" (no gradient: {', '.join(item['missing'])})" if item["missing"] else "")
            lines.append(
                f"| {shape['name']} | {item['name']} | {output:.2e} | {_fmt(input_grad, 2, '') if input_grad is None else f'{input_grad:.2e}'} "
                f"| {'-' if worst is None else f'{errors[worst]:.2e} ({worst})'} | {result} |"
            )
    targets = []
    for shape in run["shapes"]:
        lines += ["", f"## {shape['title']}, {shape['tokens']} tokens" + (f" (dry run: {', '.join(shape['overrides'])}, H={shape['hidden_size']})" if run["dry_run"] else ""), ""]
        if "failed" in shape:
            lines.append(f"Not measured: {shape['failed']}")
            continue
        report = shape["report"]
        rows = {row["name"]: row for row in report["rows"]}
        torch_row = rows.get("dropless (torch)")
        memory_column = "peak memory" if report["memory"] == "peak_allocated" else "saved for backward"
        lines += [
            f"| implementation | fwd ms | fwd+bwd ms | TFLOP/s | % of peak | vs dense | vs looped | vs torch._grouped_mm | {memory_column} | rounds |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, row in rows.items():
            versus_torch = None if torch_row is None else row["forward_backward_ms"] / torch_row["forward_backward_ms"]
            memory = format_bytes(row["memory_bytes"])
            lines.append(
                f"| {name} | {row['forward_ms']:.2f} | {row['forward_backward_ms']:.2f} | {row['forward_backward_tflops']:.3g} "
                f"| {100 * row['forward_backward_tflops'] / peak['tflops']:.0f}% | {row['vs_dense']:.2f}x | {_fmt(row['vs_looped'], 2, 'x')} "
                f"| {_fmt(versus_torch, 2, 'x')} | {memory} | {row['samples']} |"
            )
        if report["loads"]:
            loads = report["loads"]["tokens_per_expert"]
            mean = sum(loads) / len(loads)
            lines += ["", f"Loads per routed expert in one forward: min {min(loads)}, mean {mean:.0f}, max {max(loads)} (max/mean {max(loads) / mean:.2f})."]
        lines += [f"Not measured: {item['name']}: {item['reason']}." for item in report["skipped"]]
        lines += [f"Note: {note}." for note in report["notes"]]
        triton_row = rows.get("dropless (triton)")
        if triton_row and torch_row:
            faster = triton_row["forward_backward_ms"] < torch_row["forward_backward_ms"]
            targets.append(
                f"- {shape['name']}: Triton {triton_row['forward_backward_ms']:.2f} ms vs torch._grouped_mm {torch_row['forward_backward_ms']:.2f} ms "
                f"({triton_row['forward_backward_ms'] / torch_row['forward_backward_ms']:.2f}x): {'meets' if faster else 'misses'} "
                "\"Triton faster than torch._grouped_mm\""
            )
        if shape["name"] == "mixtral" and triton_row:
            share = triton_row["forward_backward_tflops"] / peak["tflops"]
            targets.append(f"- mixtral: Triton at {100 * share:.0f}% of the measured dense bf16 peak: {'meets' if share >= 0.5 else 'misses'} \">= 50%\"")
    lines += ["", "## Targets (issue 18)", "", *(targets or ["- no Triton row was measured: the targets are not assessed"])]
    tests = run.get("unit_tests")
    if tests:
        lines += ["", "## Kernel unit tests on this device", "", f"`{tests['command']}`: {tests['summary']}", *[f"- {line}" for line in tests.get("failures", [])]]
    return "\n".join(lines) + "\n"


def output_path(folder: Path, stem: str) -> Path:
    """`folder/stem.md`, or stem-2.md, -3, ... when it exists (an earlier run the same day)."""
    path, number = folder / f"{stem}.md", 2
    while path.exists():
        path, number = folder / f"{stem}-{number}.md", number + 1
    return path


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    started = time.perf_counter()
    try:
        import torch
    except ImportError:
        log("benchmarks/gpu.py needs torch (and, for the Triton rows, triton): nothing measured")
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        log(
            "no CUDA GPU here (torch.cuda.is_available() is False): nothing measured, no report written. Run this on a "
            "machine with a CUDA GPU; `python benchmarks/gpu.py --dry-run` checks the script at tiny sizes on the CPU."
        )
        return 0
    device = torch.device("cpu" if args.dry_run else "cuda")
    date = datetime.date.today().isoformat()
    run = {
        "date": date,
        "dry_run": args.dry_run,
        "command": "python benchmarks/gpu.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "environment": environment(torch, device),
    }
    log("measuring the dense bf16 peak")
    run["peak"] = dense_peak(torch, device, torch.bfloat16, DRY_PEAK_SIZES if args.dry_run else PEAK_SIZES)
    log(f"dense bf16 peak: {run['peak']['tflops']:.1f} TFLOP/s")
    shapes = []
    for name in args.shapes:
        if time.perf_counter() - started > SHAPE_START_S:
            shapes.append({"name": name, "title": SHAPES[name][3], "tokens": SHAPES[name][2], "failed": "no time left (8-minute budget)"})
            continue
        try:
            shapes.append(run_shape(torch, name, args, device))
        except Exception as exc:  # one shape's failure (out of memory, a kernel error) leaves the others measured
            log(f"{name}: failed: {type(exc).__name__}: {exc}")
            shapes.append({"name": name, "title": SHAPES[name][3], "tokens": SHAPES[name][2], "failed": f"{type(exc).__name__}: {str(exc)[:500]}"})
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    run["shapes"] = shapes
    left = DEADLINE_S - (time.perf_counter() - started)
    if not args.dry_run and left > 30:
        log(f"kernel unit tests ({left:.0f} s left)")
        run["unit_tests"] = unit_tests(left - 10)
    run["seconds"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    path = output_path(args.out, f"{'dry-run' if args.dry_run else 'gpu'}-{date}")
    path.write_text(markdown(run), encoding="utf-8")
    path.with_suffix(".json").write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
    log(f"wrote {path} and {path.with_suffix('.json').name} ({run['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
