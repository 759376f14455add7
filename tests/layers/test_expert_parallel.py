"""Expert parallelism with real processes: gloo on 127.0.0.1, 2 and 4 ranks, against the single-process layer.

One process group per world size runs every scenario (`SCENARIOS`) in turn; each rank compares what it
holds with a single-process layer built from the same seed on the concatenated tokens of all ranks
(float64: outputs, input gradients, expert-weight gradients (its shard), replicated-parameter gradients
(summed over the ranks), statistics). A failure on one rank is reported with its traceback; every wait
is bounded (gloo's timeout, the queue's and join's), so a dead rank fails the test instead of hanging it.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import traceback
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist

from fastmoe_cfg.schemas import MLPBaseConfig

TIMEOUT = 90  # seconds for a whole world (start, every scenario, exit)
H = 8
TOLERANCE = {"rtol": 1e-9, "atol": 1e-10}
SOFTMAX = {
    "type": "moe", "experts": 9, "shared_experts": 1, "experts_per_token": 2, "intermediate_size": 6, "gated": True,
    "pre_norm": {"type": "rms_norm"}, "auxiliary_loss_coefficient": 0.1, "z_loss_coefficient": 0.01, "implementation": "dropless",
}
AUX_FREE = {
    "type": "moe", "experts": 8, "experts_per_token": 2, "intermediate_size": 4, "routing": "aux_free", "router_score_function": "sigmoid",
    "expert_groups": 2, "expert_groups_per_token": 1, "sequence_auxiliary_loss_coefficient": 0.1, "bias_update_rate": 0.05,
    "expert_load_scaling": True,
}


def build(data: dict, *, mesh=None, seed: int = 0, device=None):
    torch.manual_seed(seed)
    config = MLPBaseConfig.from_dict(data)
    if device is not None:
        with torch.device(device):
            return config.build(H, dtype=torch.float64, ep_mesh=mesh)
    return config.build(H, dtype=torch.float64, ep_mesh=mesh)


def shard(tensor: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    size = tensor.shape[0] // world
    return tensor[rank * size : (rank + 1) * size]


def is_expert(name: str) -> bool:
    """A routed expert's parameter (sharded over the EP mesh): experts.* or, in a hybrid, routed.experts.*."""
    return f".{name}".startswith((".experts.", ".routed.experts."))


def local(tensor):
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def check_parameters(layer, reference, rank, world):
    """Each parameter: the expert shards equal the reference's slice, the replicated ones its value."""
    expected = dict(reference.named_parameters())
    for name, parameter in layer.named_parameters():
        want = shard(expected[name], rank, world) if is_expert(name) else expected[name]
        torch.testing.assert_close(local(parameter).detach(), want.detach(), rtol=0, atol=0, msg=name)


def forward_backward(layer, x, grad, mask=None):
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    out = layer(x, token_mask=mask)
    (out * grad).sum().backward()
    return out.detach(), x.grad, {name: p.grad for name, p in layer.named_parameters() if p.grad is not None}


def compare(layer, reference, rank, world, x, grad, mask=None, *, per_rank_reference=False):
    """The EP layer on this rank's part against the single-process layer (on all tokens, or on this rank's only)."""
    part = (lambda t: shard(t, rank, world)) if not per_rank_reference else (lambda t: t)
    xs, gs, ms = shard(x, rank, world), shard(grad, rank, world), None if mask is None else shard(mask, rank, world)
    out, x_grad, grads = forward_backward(layer, xs, gs, ms)
    ref_x, ref_g, ref_m = (xs, gs, ms) if per_rank_reference else (x, grad, mask)
    ref_out, ref_x_grad, ref_grads = forward_backward(reference, ref_x, ref_g, ref_m)
    torch.testing.assert_close(out, part(ref_out), **TOLERANCE, msg="output")
    torch.testing.assert_close(x_grad, part(ref_x_grad), **TOLERANCE, msg="input gradient")
    for name, expected in ref_grads.items():
        actual = local(grads[name]) if name in grads else torch.zeros_like(local(dict(layer.named_parameters())[name]))
        if per_rank_reference:  # the single process on each rank's tokens, summed over the ranks
            expected = expected.clone()
            dist.all_reduce(expected)
        if is_expert(name):
            expected = shard(expected, rank, world)
        else:
            actual = actual.clone()
            dist.all_reduce(actual)
        torch.testing.assert_close(actual, expected, **TOLERANCE, msg=f"gradient of {name}")
    if not per_rank_reference:
        for name, value in reference.stats.items():
            torch.testing.assert_close(layer.stats[name], value, **TOLERANCE, msg=f"stats[{name}]")


def data(world, tokens=6, seed=1, shape=None):
    """[world · 2, tokens / 2, H] inputs and output gradients: each rank's sequences are rows of the concatenation
    (2-D input would be one sequence per rank, but one sequence in the single process)."""
    generator = torch.Generator().manual_seed(seed)
    shape = shape or (world * 2, tokens // 2)
    return torch.randn(*shape, H, dtype=torch.float64, generator=generator), torch.randn(*shape, H, dtype=torch.float64, generator=generator)


# --- scenarios: run on every rank, with the world's 1-D mesh -----------------------------------------------------


def softmax_top_k(rank, world, mesh, tmp):
    layer, reference = build(SOFTMAX, mesh=mesh), build(SOFTMAX)
    check_parameters(layer, reference, rank, world)
    assert layer.experts.layer_1.weight.shape == reference.experts.layer_1.weight.shape
    assert local(layer.experts.layer_1.weight).shape[0] == 8 // world
    compare(layer.train(), reference.train(), rank, world, *data(world))
    compare(layer.eval(), reference.eval(), rank, world, *data(world, seed=2))
    # float32 runs torch._grouped_mm itself (float64 takes the padded fallback), which needs 16-byte rows
    torch.manual_seed(0)
    layer_32 = MLPBaseConfig.from_dict(SOFTMAX).build(H, ep_mesh=mesh)
    torch.manual_seed(0)
    reference_32 = MLPBaseConfig.from_dict(SOFTMAX).build(H)
    x = data(world)[0].float()
    torch.testing.assert_close(layer_32(shard(x, rank, world)), shard(reference_32(x), rank, world), rtol=1e-5, atol=1e-6)


def aux_free_groups_sequences_mask(rank, world, mesh, tmp):
    """3-D input with a token_mask (rank 1's tokens all masked: it sends no rows), sigmoid, groups, sequence loss,
    load scaling, and update_bias() over 3 steps: the same bias on every rank and in the single process."""
    layer, reference = build(AUX_FREE, mesh=mesh).train(), build(AUX_FREE).train()
    for step in range(3):
        x, grad = data(world, shape=(world * 2, 5), seed=10 + step)
        mask = torch.rand(world * 2, 5, generator=torch.Generator().manual_seed(step)) > 0.3
        mask[2:4] = False  # rank 1's sequences
        compare(layer, reference, rank, world, x, grad, mask)
        layer.update_bias()
        reference.update_bias()
        torch.testing.assert_close(layer.router_correction_bias, reference.router_correction_bias, rtol=0, atol=0)
    assert reference.router_correction_bias.abs().max() > 0


def rank_without_rows(rank, world, mesh, tmp):
    """Every token picks experts 0 and 1 (rank 0's): the other ranks receive nothing."""
    data_ = {**SOFTMAX, "router_bias": {"enabled": True}}
    layer, reference = build(data_, mesh=mesh).train(), build(data_).train()
    with torch.no_grad():
        for module in (layer, reference):
            module.router.bias.copy_(torch.tensor([50.0, 50.0] + [-50.0] * 6))
    compare(layer, reference, rank, world, *data(world))
    assert reference.stats["tokens_per_expert"][2:].sum() == 0
    # float32 takes torch._grouped_mm itself, which once refused the 0 received rows of the other ranks
    layer_32 = build(data_, mesh=mesh).float()
    with torch.no_grad():
        layer_32.router.bias.copy_(torch.tensor([50.0, 50.0] + [-50.0] * 6))
    x = shard(data(world)[0], rank, world).float().requires_grad_()
    layer_32(x).sum().backward()
    assert torch.isfinite(x.grad).all()


def capacity_per_rank(rank, world, mesh, tmp):
    """Capacity is computed from each rank's own tokens: the EP layer equals the single process on each rank's tokens."""
    data_ = {**SOFTMAX, "capacity_factor": 0.5, "auxiliary_loss_coefficient": 0.0, "z_loss_coefficient": 0.0}
    layer, reference = build(data_, mesh=mesh).train(), build(data_).train()
    compare(layer, reference, rank, world, *data(world, tokens=8), per_rank_reference=True)
    dropped = reference.stats["dropped_tokens"].clone()
    dist.all_reduce(dropped)
    assert dropped > 0 and layer.stats["dropped_tokens"] == dropped


def meta_build_and_state_dicts(rank, world, mesh, tmp):
    """Meta build + to_empty + reset_parameters equals the direct build; a full state dict loads into the shards
    and gathers back exactly; distributed checkpoints saved here load on other world sizes (next world, and 1 process)."""
    from torch.distributed.checkpoint import load, save
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, set_model_state_dict

    reference = build(SOFTMAX)
    meta = build(SOFTMAX, mesh=mesh, device="meta")
    assert local(meta.experts.layer_1.weight).is_meta
    meta.to_empty(device="cpu")
    torch.manual_seed(0)
    meta.reset_parameters()
    check_parameters(meta, reference, rank, world)

    other = build(SOFTMAX, seed=7)  # the full state to load
    full = {name: tensor.clone() for name, tensor in other.state_dict().items()}
    options = StateDictOptions(full_state_dict=True)
    set_model_state_dict(meta, dict(full), options=options)  # (it replaces the dict's values by the loaded shards)
    check_parameters(meta, other, rank, world)
    gathered = get_model_state_dict(meta, options=options)
    assert gathered.keys() == full.keys()
    for name in full:
        torch.testing.assert_close(gathered[name], full[name], rtol=0, atol=0, msg=name)

    checkpoint = os.path.join(tmp, f"world{world}")
    save(meta.state_dict(), checkpoint_id=checkpoint)  # DTensor shards: resharded on load
    if world == 4:  # the 2-rank checkpoint, resharded over 4 ranks
        fresh = build(SOFTMAX, mesh=mesh, seed=3)
        state = fresh.state_dict()
        load(state, checkpoint_id=os.path.join(tmp, "world2"))
        check_parameters(fresh, other, rank, world)


def fsdp2_training_step(rank, world, mesh, tmp):
    """FSDP2 over the replicated parameters (the experts stay sharded by EP) and two SGD steps: the same
    parameters as single-process training on all the tokens. FSDP2 averages gradients; each rank's loss
    is a share of the global loss, so the divide factor is set to 1 (a sum)."""
    from torch.distributed.fsdp import fully_shard

    if world == 4:  # experts sharded further (over a "dp" dimension): reset_parameters refuses to draw them wrongly
        from torch.distributed.device_mesh import init_device_mesh

        mesh_2d = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "ep"))
        sharded = build(SOFTMAX, mesh=mesh_2d["ep"])
        fully_shard(sharded.experts, mesh=mesh_2d["dp"])
        for call, message in (
            (sharded.reset_parameters, "sharded further than ep_mesh (2 of 8 here"),
            (lambda: sharded(torch.zeros(3, H, dtype=torch.float64)), "this rank holds 2 experts, not the 4 of its ep_mesh share"),
        ):
            try:
                call()
            except RuntimeError as error:
                assert message in str(error), str(error)
            else:
                raise AssertionError("no error")
        return
    layer, reference = build(SOFTMAX, mesh=mesh).train(), build(SOFTMAX).train()
    experts = set(layer.experts.parameters())
    fully_shard(layer, mesh=mesh, ignored_params=experts)
    layer.set_gradient_divide_factor(1.0)
    layer.set_force_sum_reduction_for_comms(True)  # gloo has no PREMUL_SUM (needed in float32)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    reference_optimizer = torch.optim.SGD(reference.parameters(), lr=0.1)
    for step in range(2):
        x, grad = data(world, seed=20 + step)
        for module, optim, xs, gs in ((layer, optimizer, shard(x, rank, world), shard(grad, rank, world)), (reference, reference_optimizer, x, grad)):
            optim.zero_grad()
            (module(xs) * gs).sum().backward()
            optim.step()
    expected = dict(reference.named_parameters())
    for name, parameter in layer.named_parameters():
        value = local(parameter).detach() if is_expert(name) else parameter.full_tensor().detach()
        want = shard(expected[name], rank, world) if is_expert(name) else expected[name]
        torch.testing.assert_close(value, want.detach(), **TOLERANCE, msg=name)


def compiled(rank, world, mesh, tmp):
    """torch.compile of an expert-parallel layer gives eager's outputs and gradients; the exchange and the local
    experts run eagerly (`_parallel_experts` is excluded from compilation): the graph breaks around them. A backend
    that counts the graphs and runs them as traced (dynamo's tracing is what is tested; aot_eager would double the time)."""
    import torch._dynamo

    torch._dynamo.reset()
    graphs = []

    def counting(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    layer, other = build(SOFTMAX, mesh=mesh).train(), build(SOFTMAX, mesh=mesh).train()
    x, grad = data(world)
    xs, gs = shard(x, rank, world), shard(grad, rank, world)
    expected = forward_backward(layer, xs, gs)
    out, x_grad, _ = forward_backward(torch.compile(other, backend=counting), xs, gs)
    assert len(graphs) >= 2, f"{len(graphs)} graph(s)"
    torch.testing.assert_close(out, expected[0], **TOLERANCE)
    torch.testing.assert_close(x_grad, expected[1], **TOLERANCE)
    for name, parameter in other.named_parameters():
        torch.testing.assert_close(local(parameter.grad), local(expected[2][name]), **TOLERANCE, msg=name)


def hf_weights(rank, world, mesh, tmp):
    """An HF Mixtral block's weights into an expert-parallel layer through hf_state_dict + set_model_state_dict:
    the same function as the single-process import; import_moe_block and export_state_dict point to that path."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
    from transformers import MixtralConfig
    from transformers.models.mixtral.modeling_mixtral import MixtralSparseMoeBlock

    from fastmoe_cfg.hf import export_state_dict, hf_state_dict, import_moe_block

    hf_config = MixtralConfig(hidden_size=H, intermediate_size=6, num_local_experts=4, num_experts_per_tok=2)
    hf_config._experts_implementation = "eager"
    torch.manual_seed(0)
    block = MixtralSparseMoeBlock(hf_config).double()
    with torch.no_grad():
        for parameter in block.parameters():
            parameter.normal_(0, 0.3)
    single = import_moe_block(block, hf_config)
    config, hidden, state = hf_state_dict(block, hf_config)
    layer = config.build(hidden, dtype=torch.float64, ep_mesh=mesh)
    set_model_state_dict(layer, state, options=StateDictOptions(full_state_dict=True))
    x, grad = data(world)
    compare(layer.eval(), single.eval(), rank, world, x, grad)
    for call, message in (
        (lambda: import_moe_block(block, hf_config, ep_mesh=mesh), "hf_state_dict(hf_block, hf_config)"),
        (lambda: export_state_dict(layer, "mixtral"), "get_model_state_dict(layer, options=StateDictOptions(full_state_dict=True))"),
    ):
        try:
            call()
        except ValueError as error:
            assert message in str(error), str(error)
        else:
            raise AssertionError("no error")


def two_dimensional_mesh(rank, world, mesh, tmp):
    """A (dp 2, ep 2) mesh: experts over "ep", tokens over all 4 ranks (dp_mesh = the "dp" dimension). The expert
    gradients summed over "dp" and the replicated ones over all ranks equal the single process on all tokens;
    the statistics are those of all tokens; the bytes sent to other ranks are counted."""
    from torch.distributed.device_mesh import init_device_mesh

    mesh_2d = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "ep"))
    ep, dp = mesh_2d["ep"], mesh_2d["dp"]
    torch.manual_seed(0)
    layer = MLPBaseConfig.from_dict(SOFTMAX).build(H, dtype=torch.float64, ep_mesh=ep, dp_mesh=dp).train()
    reference = build(SOFTMAX).train()
    x, grad = data(world)
    out, x_grad, grads = forward_backward(layer, shard(x, rank, world), shard(grad, rank, world))
    ref_out, ref_x_grad, ref_grads = forward_backward(reference, x, grad)
    torch.testing.assert_close(out, shard(ref_out, rank, world), **TOLERANCE)
    torch.testing.assert_close(x_grad, shard(ref_x_grad, rank, world), **TOLERANCE)
    for name, expected in ref_grads.items():
        actual = local(grads[name]).clone()
        if is_expert(name):
            dist.all_reduce(actual, group=dp.get_group())
            expected = shard(expected, ep.get_local_rank(), 2)
        else:
            dist.all_reduce(actual)
        torch.testing.assert_close(actual, expected, **TOLERANCE, msg=name)
    for name, value in reference.stats.items():
        torch.testing.assert_close(layer.stats[name], value, **TOLERANCE, msg=f"stats[{name}]")
    # Bytes to other ranks, summed over the EP group: each row sent away goes there (rows and weight, H + 1 values)
    # and back (H), and its gradients do the same in backward: 2 · (2H + 1) values per row sent.
    destinations = layer.route(shard(x, rank, world).reshape(-1, H)).experts_TK // 4  # 4 experts per EP rank
    counts = torch.tensor([int((destinations != ep.get_local_rank()).sum()), layer.parallel.bytes_sent])
    dist.all_reduce(counts, group=ep.get_group())
    assert counts[1] == counts[0] * 2 * (2 * H + 1) * 8, counts.tolist()


def hybrid(rank, world, mesh, tmp):
    """hybrid_moe: the routed branch's experts over the mesh, the dense branch replicated."""
    data_ = {
        "type": "hybrid_moe", "pre_norm": {"type": "rms_norm"}, "dense": {"intermediate_size": 6, "gated": True},
        "routed": {**{key: value for key, value in SOFTMAX.items() if key not in ("type", "shared_experts", "pre_norm")}, "experts": 8},
    }
    compare(build(data_, mesh=mesh).train(), build(data_).train(), rank, world, *data(world))


def invalid_meshes(rank, world, mesh, tmp):
    """Clear errors before any collective: the experts must divide over the ranks, one rank at most per expert, a 1-D
    mesh, the dropless implementation; dp_mesh needs ep_mesh; a dense MLP has no experts to spread."""
    from torch.distributed.device_mesh import init_device_mesh

    mesh_2d = init_device_mesh("cpu", (2, 2), mesh_dim_names=("dp", "ep"))
    cases = [
        ({**SOFTMAX, "experts": 7}, {"ep_mesh": mesh}, "ep_mesh has 4 ranks, which must divide the 6 routed experts (experts - shared_experts)"),
        ({**SOFTMAX, "experts": 3}, {"ep_mesh": mesh}, "ep_mesh has 4 ranks but the layer has only 2 routed experts: at most one rank per expert"),
        (SOFTMAX, {"ep_mesh": mesh_2d}, "ep_mesh must be 1-D (one mesh dimension: mesh['ep']), got a 2-D mesh of shape (2, 2)"),
        (SOFTMAX, {"ep_mesh": mesh, "dp_mesh": mesh_2d}, "dp_mesh must be 1-D (one mesh dimension: mesh['dp']), got a 2-D mesh of shape (2, 2)"),
        ({**SOFTMAX, "implementation": "looped"}, {"ep_mesh": mesh}, "implementation: looped does not support expert parallelism (ep_mesh): use dropless or auto"),
        (SOFTMAX, {"dp_mesh": mesh}, "dp_mesh only applies with ep_mesh (expert parallelism); without it, reduce across data-parallel ranks yourself"),
        (
            SOFTMAX, {"ep_mesh": mesh_2d["ep"], "dp_mesh": mesh},
            f"dp_mesh must be the other dimension of a (dp, ep) mesh, meeting ep_mesh in this rank only; it shares ranks "
            f"{sorted(mesh_2d['ep'].mesh.tolist())} with ep_mesh, whose sums would count them twice",
        ),
        ({"type": "mlp"}, {"ep_mesh": mesh}, "expert parallelism (ep_mesh, dp_mesh) needs experts: type moe or hybrid_moe, not mlp"),
    ]
    for config, meshes, message in cases:
        try:
            MLPBaseConfig.from_dict(config).build(H, **meshes)
        except ValueError as error:
            assert str(error) == message, str(error)
        else:
            raise AssertionError(f"no error for {config} with {meshes}")


SCENARIOS = {
    2: [hybrid, hf_weights, compiled, softmax_top_k, aux_free_groups_sequences_mask, rank_without_rows, capacity_per_rank, meta_build_and_state_dicts, fsdp2_training_step],
    # 4 ranks on 2 cores cost the most: what needs 4 (resharding 2 -> 4, a (2, 2) mesh, mesh errors, experts sharded further)
    4: [meta_build_and_state_dicts, two_dimensional_mesh, invalid_meshes, fsdp2_training_step],
}


def _worker(rank: int, world: int, port: int, tmp: str, queue) -> None:
    torch.set_num_threads(1)
    results = {}
    try:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world, timeout=timedelta(seconds=45))
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh("cpu", (world,))
        for scenario in SCENARIOS[world]:
            try:
                scenario(rank, world, mesh, tmp)
                results[scenario.__name__] = None
            except Exception:  # noqa: BLE001  (reported to the test, with its traceback)
                results[scenario.__name__] = traceback.format_exc()
            dist.barrier()
    except Exception:  # noqa: BLE001
        results["setup"] = traceback.format_exc()
    finally:
        queue.put((rank, results))
        if dist.is_initialized():
            dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_world(world: int, tmp: str) -> dict[str, list[str]]:
    """Start `world` ranks, wait (bounded) for their results: scenario -> the failures' tracebacks (rank: text)."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    port = _free_port()
    processes = [context.Process(target=_worker, args=(rank, world, port, tmp, queue), daemon=True) for rank in range(world)]
    for process in processes:
        process.start()
    failures: dict[str, list[str]] = {scenario.__name__: [] for scenario in SCENARIOS[world]}
    try:
        for _ in range(world):
            rank, results = queue.get(timeout=TIMEOUT)
            for name, error in results.items():
                if error is not None:
                    failures.setdefault(name, []).append(f"rank {rank}:\n{error}")
    except Exception as exc:  # queue.Empty: a rank died or hung
        failures.setdefault("setup", []).append(f"no result from every rank within {TIMEOUT} s ({type(exc).__name__})")
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    return failures


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("ep"))
    return {world: run_world(world, tmp) for world in (2, 4)}, tmp


@pytest.mark.parametrize("world, scenario", [(world, scenario.__name__) for world in SCENARIOS for scenario in SCENARIOS[world]])
def test_scenario(worlds, world, scenario):
    failures, _ = worlds
    assert not failures[world].get("setup"), "\n".join(failures[world]["setup"])
    assert not failures[world][scenario], "\n".join(failures[world][scenario])


def test_ep_mesh_must_be_a_device_mesh():
    with pytest.raises(TypeError, match="ep_mesh must be a torch.distributed.device_mesh.DeviceMesh, got object"):
        MLPBaseConfig.from_dict(SOFTMAX).build(H, ep_mesh=object())


def test_a_checkpoint_of_2_ranks_loads_in_one_process(worlds):
    """The 2-rank distributed checkpoint into a single-process layer (resharding to 1)."""
    from torch.distributed.checkpoint import load

    _, tmp = worlds
    layer = build(SOFTMAX, seed=3)
    state = layer.state_dict()
    load(state, checkpoint_id=os.path.join(tmp, "world2"), no_dist=True)
    expected = build(SOFTMAX, seed=7)
    for name, tensor in expected.state_dict().items():
        torch.testing.assert_close(layer.state_dict()[name], tensor, rtol=0, atol=0, msg=name)
