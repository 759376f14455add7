"""Expert parallelism with torchrun: the MoE layer's experts over the ranks, FSDP2 over the rest, a few training steps.

    torchrun --nproc-per-node 2 examples/expert_parallel/train.py            # 1-D mesh: 2 EP ranks (gloo, CPU)
    torchrun --nproc-per-node 4 examples/expert_parallel/train.py --dp 2     # 2-D mesh: 2 (dp) × 2 (ep)

Every rank holds its own tokens. The experts of `config.yaml` are spread over the "ep" dimension; the router,
the shared expert and the norms are replicated and sharded by FSDP2 over all the ranks. Each rank's loss is
its share of the loss of all the tokens (the layer normalises its router losses so), so gradients are summed
over the ranks, never averaged: `set_gradient_divide_factor(1.0)`. With `--dp`, the expert gradients are
also summed over the "dp" dimension (the ranks that hold the same experts). At the end the layer is saved
as a distributed checkpoint, which loads on any number of ranks (or one process).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.checkpoint import save
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from fastmoe_cfg import load_config

HIDDEN = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="example: torchrun --nproc-per-node 2 examples/expert_parallel/train.py")
    parser.add_argument("--dp", type=int, default=1, help="data-parallel size of a 2-D (dp, ep) mesh; ep = world size / dp")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=256, help="tokens per rank and step")
    parser.add_argument("--checkpoint", type=Path, default=Path("ep_checkpoint"))
    args = parser.parse_args()

    dist.init_process_group("gloo")  # "nccl" on GPUs (untested here)
    world, rank = dist.get_world_size(), dist.get_rank()
    mesh = init_device_mesh("cpu", (args.dp, world // args.dp), mesh_dim_names=("dp", "ep"))
    config = load_config(Path(__file__).with_name("config.yaml"))
    torch.manual_seed(0)  # the same initialisation as one process: each rank keeps its experts
    layer = config.build(HIDDEN, ep_mesh=mesh["ep"], dp_mesh=mesh["dp"] if args.dp > 1 else None)
    experts = set(layer.experts.parameters())
    fully_shard(layer, mesh=init_device_mesh("cpu", (world,)), ignored_params=experts)
    layer.set_gradient_divide_factor(1.0)  # sum: each rank's loss is a share of the global loss
    layer.set_force_sum_reduction_for_comms(True)  # a plain sum (gloo has no PREMUL_SUM)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=1e-3)
    torch.manual_seed(1000 + rank)  # after the build: each rank draws its own jitter and dropout noise
    generator = torch.Generator().manual_seed(rank)
    target = torch.nn.Linear(HIDDEN, HIDDEN)
    torch.nn.init.normal_(target.weight, std=HIDDEN**-0.5, generator=torch.Generator().manual_seed(1))
    for step in range(args.steps):
        x = torch.randn(args.tokens, HIDDEN, generator=generator)
        with torch.no_grad():
            y = torch.tanh(target(x))
        optimizer.zero_grad()
        loss = (layer(x) - y).square().sum() / (args.tokens * world)  # a share of the mean over all ranks' tokens
        loss.backward()
        if args.dp > 1:  # the experts' gradients: the ranks of "dp" hold the same experts
            for parameter in experts:
                dist.all_reduce(parameter.grad.to_local(), group=mesh["dp"].get_group())
        optimizer.step()
        layer.update_bias()  # aux_free: the loads are already summed over the ranks
        total = loss.detach().clone()
        dist.all_reduce(total)
        if rank == 0:
            load = layer.stats["tokens_per_expert"].tolist()
            print(f"step {step}: loss {total.item():.4f}, tokens per expert {load}")
    save(layer.state_dict(), checkpoint_id=str(args.checkpoint))
    if rank == 0:
        print(f"saved {args.checkpoint} (torch.distributed.checkpoint: loads on any number of ranks)")
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
