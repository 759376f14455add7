"""Imported layer vs the Hugging Face block it came from: forward+backward time and saved-activation bytes, CPU.

For each family, transformers' MoE block of a mid-sized config (hidden 512, weights filled N(0, 0.02²)) is
imported with `fastmoe_cfg.hf.import_moe_block` (dropless and looped) and both run forward+backward on
the same input, in eval mode (no auxiliary losses on either side), fp32, 2 threads, interleaved; the report
gives the medians and ours / HF. Memory: the bytes autograd saves for backward in one forward
(`torch.autograd.graph.saved_tensors_hooks`, each storage counted once), ours / HF. The HF blocks run
their eager experts (`experts_implementation="eager"`: a loop over the experts that receive tokens).

    python benchmarks/hf_cpu.py [--tokens 2048] [--repeats 10] [--warmup 2] [--format json]
"""

from __future__ import annotations

import argparse
import sys

HIDDEN = 512


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="example: python benchmarks/hf_cpu.py --repeats 10")
    parser.add_argument("--tokens", type=int, default=2048, help="tokens per forward (one sequence)")
    parser.add_argument("--repeats", type=int, default=10, help="timed passes per measurement (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes first")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args()
    if args.tokens < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--tokens and --repeats must be >= 1, --warmup >= 0")
    return args


def _blocks():
    """name -> (HF config, HF block): Mixtral-like coarse experts, Qwen3-MoE-like fine ones, DeepSeek-V3 routing, GPT-OSS."""
    import transformers
    from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MoE
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssMLP
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    configs = {
        "mixtral (E=8, top-2, I=1024)": (
            transformers.MixtralConfig(hidden_size=HIDDEN, intermediate_size=1024, num_local_experts=8, num_experts_per_tok=2, num_hidden_layers=1),
            MixtralSparseMoeBlock,
        ),
        "qwen3_moe (E=64, top-8, I=128)": (
            transformers.Qwen3MoeConfig(
                hidden_size=HIDDEN, moe_intermediate_size=128, num_experts=64, num_experts_per_tok=8, norm_topk_prob=True, num_hidden_layers=1
            ),
            Qwen3MoeSparseMoeBlock,
        ),
        "deepseek_v3 (E=64 + 1 shared, top-8, 8 groups, I=128)": (
            transformers.DeepseekV3Config(
                hidden_size=HIDDEN, moe_intermediate_size=128, n_routed_experts=64, n_shared_experts=1, num_experts_per_tok=8, n_group=8,
                topk_group=4, num_hidden_layers=1, first_k_dense_replace=0,
            ),
            DeepseekV3MoE,
        ),
        "gpt_oss (E=32, top-4, I=256, biases)": (
            transformers.GptOssConfig(hidden_size=HIDDEN, intermediate_size=256, num_local_experts=32, num_experts_per_tok=4, num_hidden_layers=1),
            GptOssMLP,
        ),
    }
    return configs


def main() -> None:
    args = _parse()
    sys.path.insert(0, __file__.rsplit("/", 1)[0])
    from moe_cpu import ALLOCATOR_ENV, THREADS, _pin_allocator

    _pin_allocator()

    import json
    import os
    import statistics
    import time

    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from fastmoe_cfg.hf import import_moe_block

    torch.set_num_threads(THREADS)
    console, status = Console(width=max(Console().width, 120)), Console(stderr=True)

    def run(module, x, grad) -> float:
        module.zero_grad(set_to_none=True)
        x.grad = None
        start = time.perf_counter()
        out = module(x)
        (out[0] if isinstance(out, tuple) else out).backward(grad)
        return time.perf_counter() - start

    def saved_bytes(module, x) -> int:
        storages: dict[int, int] = {}

        def pack(tensor):
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            module(x)
        return sum(storages.values())

    names = ["HF", "dropless", "looped"]
    rows = []
    blocks = _blocks()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=status) as progress:
        task = progress.add_task("measuring", total=len(blocks) * (args.warmup + args.repeats))
        for family, (config, block_class) in blocks.items():
            progress.update(task, description=family)
            config._experts_implementation = "eager"
            torch.manual_seed(0)
            block = block_class(config).eval()
            with torch.no_grad():
                for parameter in block.parameters():
                    parameter.normal_(0, 0.02)
            modules = {"HF": block, **{name: import_moe_block(block, config, implementation=name) for name in names[1:]}}
            generator = torch.Generator().manual_seed(0)
            x = torch.randn(1, args.tokens, HIDDEN, generator=generator).requires_grad_()
            grad = torch.randn(1, args.tokens, HIDDEN, generator=generator)
            times: dict[str, list[float]] = {name: [] for name in names}
            for round_ in range(args.warmup + args.repeats):
                shift = round_ % len(names)
                for name in names[shift:] + names[:shift]:
                    elapsed = run(modules[name], x, grad)
                    if round_ >= args.warmup:
                        times[name].append(elapsed)
                progress.advance(task)
            memory = {name: saved_bytes(module, x) for name, module in modules.items()}
            hf_ms = 1000 * statistics.median(times["HF"])
            for name in names[1:]:
                ours_ms = 1000 * statistics.median(times[name])
                rows.append({
                    "family": family, "implementation": name, "ours_ms": round(ours_ms, 2), "hf_ms": round(hf_ms, 2),
                    "time_ratio": round(ours_ms / hf_ms, 3), "ours_saved_mib": round(memory[name] / 2**20, 2),
                    "hf_saved_mib": round(memory["HF"] / 2**20, 2), "memory_ratio": round(memory[name] / memory["HF"], 3),
                })

    header = (
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32 eval forward+backward, hidden {HIDDEN}, {args.tokens} tokens, "
        f"median of {args.repeats} after {args.warmup} warm-up, interleaved; allocator: "
        + " ".join(f"{name}={os.environ[name]}" for name in ALLOCATOR_ENV)
    )
    if args.format == "json":
        print(json.dumps({"header": header, "rows": rows}, indent=2))
        return
    table = Table(title="imported layer vs the Hugging Face block (CPU)")
    for column in ("family", "ours", "ours ms", "HF ms", "time ours/HF", "saved MiB ours", "saved MiB HF", "memory ours/HF"):
        table.add_column(column, justify="left" if column in ("family", "ours") else "right")
    for row in rows:
        table.add_row(
            row["family"], row["implementation"], f"{row['ours_ms']:.1f}", f"{row['hf_ms']:.1f}", f"{row['time_ratio']:.2f}x",
            f"{row['ours_saved_mib']:.1f}", f"{row['hf_saved_mib']:.1f}", f"{row['memory_ratio']:.2f}x",
        )
    console.print(table)
    console.print(header)


if __name__ == "__main__":
    main()
