"""MoE layer forward+backward on the CPU (fp32, 2 threads), as a ratio to an equal-FLOP dense MLP, in one run.

For each shape, token count and implementation, the MoE layer (train mode, default
auxiliary loss coefficient, random router) and a dense MLP of width (k + shared experts) ·
expert intermediate (same gated silu, no biases, as Mixtral) run forward+backward on the
same random input (`compiled`: both under torch.compile(fullgraph=True), inductor). After a warm-up, the measurements of dense and of each MoE
implementation are interleaved, `--repeats` times, and the report gives the medians
and their ratio. Targets at 2048 tokens: <= 1.1x dense (coarse), <= 1.3x dense
(fine-grained), <= 1.5x (DeepSeek-style).

glibc's mmap threshold makes per-expert loops swing up to 2x between runs, so the
script re-executes itself with MALLOC_MMAP_MAX_=0 and a large MALLOC_TRIM_THRESHOLD_
unless they are set, pinning the allocator for every implementation alike.

    python benchmarks/moe_cpu.py [--repeats 15] [--warmup 3] [--format json]
"""

from __future__ import annotations

import argparse
import os
import sys

ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "17179869184"}
THREADS = 2
HIDDEN = 512
# name -> (routed experts, experts_per_token, expert intermediate size)
SHAPES = {"coarse": (8, 2, 1024), "fine-grained": (64, 8, 128), "deepseek-style": (64, 8, 128), "fine-grained balanced": (64, 8, 128)}
# Extra MoE fields per shape. deepseek-style: DeepSeek-V3's routing (sigmoid scores, aux-free bias updated
# after every step, 8 groups of which 4 are kept, routed_scaling_factor 2.5, sequence loss) and one shared
# expert of the routed experts' width. fine-grained balanced: fine-grained with the benchmark router that
# spreads tokens evenly, so its row against fine-grained's is the cost of the random router's imbalance.
EXTRA = {
    "deepseek-style": {
        "experts": 65, "shared_experts": 1, "routing": "aux_free", "router_score_function": "sigmoid", "expert_groups": 8,
        "expert_groups_per_token": 4, "routed_scaling_factor": 2.5, "automatic_bias_update": True,
        "sequence_auxiliary_loss_coefficient": 1e-4,
    },
    "fine-grained balanced": {"routing": "balanced"},
}
TOKENS = (512, 2048)
TARGETS = {("coarse", 2048): 1.1, ("fine-grained", 2048): 1.3, ("deepseek-style", 2048): 1.5}  # issue 18: 1.1 and 1.3
IMPLEMENTATIONS = ("looped", "dropless", "auto", "compiled")


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="example: python benchmarks/moe_cpu.py --repeats 15 --format json"
    )
    parser.add_argument("--repeats", type=int, default=15, help="timed passes per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed passes per measurement first")
    parser.add_argument(
        "--implementations",
        default=",".join(IMPLEMENTATIONS),
        help=f"comma-separated subset of {','.join(IMPLEMENTATIONS)} (auto resolves to dropless today; compiled is "
        "torch.compile(dropless, fullgraph=True), measured against the compiled dense MLP)",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args()
    args.implementations = [name.strip() for name in args.implementations.split(",") if name.strip()]
    unknown = set(args.implementations) - set(IMPLEMENTATIONS)
    if unknown or not args.implementations:
        parser.error(f"unknown implementations: {', '.join(sorted(unknown)) or '(none given)'}")
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    return args


def _pin_allocator() -> None:
    """Re-execute this script with the allocator settings unless they are already set (before torch is imported)."""
    if all(os.environ.get(name) is not None for name in ALLOCATOR_ENV):
        return
    env = {**os.environ, **{name: os.environ.get(name, value) for name, value in ALLOCATOR_ENV.items()}}
    settings = " ".join(f"{name}={env[name]}" for name in ALLOCATOR_ENV)
    print(f"re-executing with {settings} (pins glibc's allocator for all implementations)", file=sys.stderr, flush=True)
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main() -> None:
    args = _parse()
    _pin_allocator()

    import json
    import statistics
    import time

    import torch
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from fastmoe_cfg.schemas.mlp import MLPConfig, MoEMLPConfig

    torch.set_num_threads(THREADS)
    console = Console(width=max(Console().width, 120))  # the table stays readable in a pipe or a log
    status = Console(stderr=True)
    allocator = " ".join(f"{name}={os.environ[name]}" for name in ALLOCATOR_ENV)
    header = (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 forward+backward, hidden {HIDDEN}, "
        f"median of {args.repeats} after {args.warmup} warm-up, interleaved; allocator: {allocator}"
    )
    status.print(header)
    load_before = os.getloadavg()[0]

    common = {"gated": True, "activation": "silu", "add_linear_biases": False}
    layers = {}
    for shape, (experts, k, intermediate) in SHAPES.items():
        torch.manual_seed(0)
        extra = EXTRA.get(shape, {})
        dense_width = (k + extra.get("shared_experts", 0)) * intermediate
        layers[shape, "dense"] = MLPConfig(intermediate_size=dense_width, **common).build(HIDDEN)
        for implementation in args.implementations:
            torch.manual_seed(0)  # same router and expert weights for every implementation
            fields = {"experts": experts, "experts_per_token": k, "intermediate_size": intermediate, **common, **extra}
            config = MoEMLPConfig(**fields, implementation="dropless" if implementation == "compiled" else implementation)
            layers[shape, implementation] = config.build(HIDDEN)
        if "compiled" in args.implementations:
            layers[shape, "compiled"] = torch.compile(layers[shape, "compiled"], fullgraph=True)
            layers[shape, "dense compiled"] = torch.compile(layers[shape, "dense"], fullgraph=True)
    for layer in layers.values():
        layer.train()

    def step(layer: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> float:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        start = time.perf_counter()
        layer(x).backward(grad)
        return time.perf_counter() - start

    names = ["dense", *args.implementations, *(["dense compiled"] if "compiled" in args.implementations else [])]
    baseline = {name: "dense compiled" if name == "compiled" else "dense" for name in args.implementations}
    cases = [(shape, tokens) for shape in SHAPES for tokens in TOKENS]
    times: dict[tuple[str, int, str], list[float]] = {}
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=status,
    )
    with progress:
        task = progress.add_task("measuring", total=len(cases) * (args.warmup + args.repeats))
        for shape, tokens in cases:
            progress.update(task, description=f"{shape}, {tokens} tokens")
            generator = torch.Generator().manual_seed(tokens)
            x = torch.randn(tokens, HIDDEN, generator=generator).requires_grad_()
            grad = torch.randn(tokens, HIDDEN, generator=generator)
            for name in names:
                if "compiled" in name:
                    step(layers[shape, name], x, grad)  # compiles for this shape, outside warm-up and timing
            for round_ in range(args.warmup + args.repeats):
                # Rotate the order each round so no implementation always runs right after another.
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    elapsed = step(layers[shape, name], x, grad)
                    if round_ >= args.warmup:
                        times.setdefault((shape, tokens, name), []).append(elapsed)
                progress.advance(task)

    load = (
        f"1-min load average before measuring: {load_before:.1f} on {os.cpu_count()} cores "
        f"(above ~0.5, other processes compete with this run and the times are not trustworthy)"
    )
    rows = []
    for shape, tokens in cases:
        target = TARGETS.get((shape, tokens))
        for implementation in args.implementations:
            dense_ms = 1000 * statistics.median(times[shape, tokens, baseline[implementation]])
            moe_ms = 1000 * statistics.median(times[shape, tokens, implementation])
            ratio = moe_ms / dense_ms
            rows.append(
                {
                    "shape": shape,
                    "experts": SHAPES[shape][0],
                    "experts_per_token": SHAPES[shape][1],
                    "intermediate_size": SHAPES[shape][2],
                    "tokens": tokens,
                    "implementation": implementation,
                    "moe_ms": round(moe_ms, 2),
                    "dense_ms": round(dense_ms, 2),
                    "dense": baseline[implementation],
                    "ratio": round(ratio, 3),
                    "target": None if implementation == "compiled" else target,
                    "meets_target": None if target is None or implementation == "compiled" else ratio <= target,
                }
            )

    if args.format == "json":
        report = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "hidden_size": HIDDEN,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "allocator": {name: os.environ[name] for name in ALLOCATOR_ENV},
            "load_average_before": load_before,
            "rows": rows,
        }
        print(json.dumps(report, indent=2))
        return

    table = Table(title="MoE forward+backward vs equal-FLOP dense MLP (fp32, CPU)")
    for column in ("shape", "tokens", "implementation", "MoE ms", "dense ms", "ratio", "target"):
        table.add_column(column, justify="left" if column in ("shape", "implementation", "target") else "right")
    for row in rows:
        experts, k, intermediate = SHAPES[row["shape"]]
        shared = EXTRA.get(row["shape"], {}).get("shared_experts", 0)
        if row["target"] is None:
            target = "-"
        else:
            target = f"<= {row['target']}x " + ("[green]meets[/]" if row["meets_target"] else "[red]misses[/]")
        table.add_row(
            f"{row['shape']} (E={experts}{f' + {shared} shared' if shared else ''}, top-{k}, I={intermediate})",
            str(row["tokens"]),
            row["implementation"],
            f"{row['moe_ms']:.1f}",
            f"{row['dense_ms']:.1f}",
            f"{row['ratio']:.3f}x",
            target,
        )
    console.print(table)
    console.print(header)
    console.print(load)
    if "auto" in args.implementations:
        console.print("auto resolves to dropless today: its rows measure the same code again (a noise check).")
    if "compiled" in args.implementations:
        console.print("compiled: torch.compile(dropless layer, fullgraph=True) against torch.compile(dense MLP, fullgraph=True).")


if __name__ == "__main__":
    main()
