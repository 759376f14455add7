"""Expert parallelism on local CPU processes (gloo): time per training step and bytes exchanged, in one run.

`--ranks N` starts N processes on 127.0.0.1; each builds the same MoE layer with its experts spread over the
N ranks (`ep_mesh`), and runs forward+backward on its own tokens. Reported, per rank and in total:

- time per step (median of `--repeats`, after `--warmup`), and the single-process layer on one rank's
  tokens as a ratio (the same work per rank without expert parallelism: what the exchanges cost on this
  machine, where the ranks share its cores);
- bytes sent to other ranks per step (counted by the layer: `layer.parallel.bytes_sent`), against the
  formula for a uniform router: per all-to-all, T·k·H·bytes·(ep − 1)/ep for T tokens per rank; two
  exchanges forward (rows out, results back), two backward (their gradients). The dispatch also carries
  each row's routing weight (one more value per row: H + 1 columns), which the formula leaves out.

    python benchmarks/moe_ep.py --ranks 2 [--tokens 2048] [--repeats 5] [--warmup 2] [--format json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import statistics
import sys
import time
from datetime import timedelta

HIDDEN = 256
CONFIG = {"type": "moe", "experts": 8, "experts_per_token": 2, "intermediate_size": 512, "gated": True, "implementation": "dropless"}


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], epilog="example: python benchmarks/moe_ep.py --ranks 4 --tokens 1024 --format json"
    )
    parser.add_argument("--ranks", type=int, default=2, help="processes (expert-parallel ranks); must divide 8 experts")
    parser.add_argument("--tokens", type=int, default=2048, help="tokens per rank")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--format", choices=("table", "json"), default="table")
    args = parser.parse_args()
    if args.ranks < 1 or CONFIG["experts"] % args.ranks:
        parser.error(f"--ranks must divide the {CONFIG['experts']} experts, got {args.ranks}")
    if args.tokens < 1 or args.repeats < 1 or args.warmup < 0:
        parser.error("--tokens and --repeats must be >= 1, --warmup >= 0")
    return args


def _steps(layer, x, repeats: int, warmup: int) -> list[float]:
    times = []
    for step in range(warmup + repeats):
        start = time.perf_counter()
        out = layer(x)
        out.square().mean().backward()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return times


def _rank(rank: int, ranks: int, port: int, args: argparse.Namespace, queue) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from fastmoe_cfg.schemas import MLPBaseConfig

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // ranks))
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=ranks, timeout=timedelta(seconds=300))
        mesh = init_device_mesh("cpu", (ranks,))
        config = MLPBaseConfig.from_dict(CONFIG)
        torch.manual_seed(0)
        layer = config.build(HIDDEN, ep_mesh=mesh).train()
        single = config.build(HIDDEN).train()
        x = torch.randn(args.tokens, HIDDEN, generator=torch.Generator().manual_seed(rank), requires_grad=True)
        dist.barrier()
        parallel = _steps(layer, x, args.repeats, args.warmup)
        sent = layer.parallel.bytes_sent / (args.repeats + args.warmup)
        dist.barrier()
        alone = _steps(single, x, args.repeats, args.warmup)
        queue.put((rank, {"parallel_s": statistics.median(parallel), "single_s": statistics.median(alone), "bytes_sent": sent}))
    except Exception as exc:  # reported by the parent
        queue.put((rank, {"error": f"{type(exc).__name__}: {exc}"}))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def main() -> int:
    args = _parse()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=_rank, args=(rank, args.ranks, port, args, queue), daemon=True) for rank in range(args.ranks)]
    for process in processes:
        process.start()
    results = {}
    try:
        for _ in range(args.ranks):
            rank, result = queue.get(timeout=900)
            results[rank] = result
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = {rank: result["error"] for rank, result in results.items() if "error" in result}
    if errors or len(results) < args.ranks:
        print(f"failed: {errors or 'a rank gave no result'}", file=sys.stderr)
        return 1
    ep, k, tokens = args.ranks, CONFIG["experts_per_token"], args.tokens
    per_exchange = tokens * k * HIDDEN * 4 * (ep - 1) / ep  # float32
    formula = 4 * per_exchange
    report = {
        "ranks": ep, "tokens_per_rank": tokens, "hidden": HIDDEN, "config": CONFIG,
        "per_rank": [results[rank] for rank in range(ep)],
        "time_per_step_s": max(result["parallel_s"] for result in results.values()),
        "single_process_time_s": statistics.median(result["single_s"] for result in results.values()),
        "bytes_sent_per_step_per_rank": statistics.mean(result["bytes_sent"] for result in results.values()),
        "formula_bytes_per_step_per_rank": formula,
    }
    report["time_ratio"] = report["time_per_step_s"] / report["single_process_time_s"]
    report["bytes_ratio"] = report["bytes_sent_per_step_per_rank"] / formula if formula else None
    if args.format == "json":
        print(json.dumps(report, indent=2))
        return 0
    print(f"expert parallelism over {ep} gloo processes, {tokens} tokens per rank, hidden {HIDDEN}, "
          f"{CONFIG['experts']} experts, top-{k}, float32")
    for rank in range(ep):
        result = results[rank]
        print(f"  rank {rank}: {result['parallel_s'] * 1e3:8.1f} ms/step (single process on its tokens {result['single_s'] * 1e3:8.1f} ms), "
              f"{result['bytes_sent'] / 2**20:8.2f} MiB sent/step")
    print(f"time per step: {report['time_per_step_s'] * 1e3:.1f} ms = {report['time_ratio']:.2f}x the single process on one rank's tokens")
    print(f"bytes sent per step per rank: {report['bytes_sent_per_step_per_rank'] / 2**20:.2f} MiB; "
          f"formula 4 · T·k·H·4·(ep-1)/ep = {formula / 2**20:.2f} MiB (ratio {report['bytes_ratio'] or 0:.3f}; "
          "the dispatch's weight column adds 1/(2H) per exchange pair, the random router's imbalance the rest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
