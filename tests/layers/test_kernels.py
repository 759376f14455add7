"""The Triton dropless kernels (`fastmoe_cfg/layers/moe/kernels/`): each kernel against its torch reference, and the
layer with `dropless_kernel: triton` against `implementation: looped`, outputs and every gradient.

Without a GPU the kernels run in Triton's interpreter on CPU tensors: TRITON_INTERPRET=1 is set here before
the kernel modules are imported (Triton reads it when a kernel is decorated) and restored afterwards, so the
rest of the session is untouched. With a GPU they run compiled, on the same tiny shapes. float32 only; the
products are IEEE (never TF32), so the tolerance is float32's of test_implementations: 1e-5 relative to the
largest reference value (the kernels sum in another order). Shapes are tiny (the interpreter runs each
program in Python): row counts that are not multiples of the interpreter's 16-row blocks, experts without
rows, sentinel rows (masked tokens, capacity drops).
"""

from __future__ import annotations

import logging
import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton", reason="the Triton kernels need triton: pip install 'fastmoe_cfg[triton]'")

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
_previous = os.environ.get("TRITON_INTERPRET")
if DEVICE == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"
try:
    from fastmoe_cfg.layers.moe import kernels
    from fastmoe_cfg.layers.moe.kernels import activation, gather_gemm, grouped_xty, ops, tuning
finally:
    if _previous is None:
        os.environ.pop("TRITON_INTERPRET", None)
    else:
        os.environ["TRITON_INTERPRET"] = _previous
if DEVICE == "cpu" and not tuning.INTERPRETED:
    pytest.skip("the kernels were imported before TRITON_INTERPRET=1 was set: they cannot run on the CPU", allow_module_level=True)

from fastmoe_cfg.layers.moe.experts import GroupedExperts
from fastmoe_cfg.layers.moe.permute import permute
from fastmoe_cfg.schemas.enums import ActivationType, DroplessKernel
from tests.layers.conftest import build, forward_backward

TOLERANCE = 1e-5
HIDDEN = 16
LIMIT = 0.7  # gpt_oss_glu's clamp, low enough for some values of N(0, 1) inputs to be clamped


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def assert_close(actual, expected, what):
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    error = ((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item() if expected.numel() else 0.0
    assert error <= TOLERANCE, f"{what}: relative error {error:.3g}"


def random_plan(tokens=11, k=2, experts=5, *, seed=0, idle=(1,), dropped=3):
    """A plan over `tokens` tokens: k distinct experts each, never the `idle` experts, `dropped` sentinel assignments."""
    generator = torch.Generator().manual_seed(seed)
    allowed = torch.tensor([e for e in range(experts) if e not in idle])
    choice_TK = torch.stack([allowed[torch.randperm(len(allowed), generator=generator)[:k]] for _ in range(tokens)])
    choice_TK.view(-1)[torch.randperm(tokens * k, generator=generator)[:dropped]] = experts
    weights_TK = torch.rand(tokens, k, generator=generator)
    return permute(choice_TK.to(DEVICE), weights_TK.to(DEVICE), experts, sentinels=dropped > 0)


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(DEVICE)


def test_block_table_matches_its_reference():
    # One expert per block; an expert's last block ends at its end (the index list is padded, not the data).
    for ends, block in (([7, 7, 27, 28, 33], 16), ([5], 16), ([0, 0, 0], 16), ([3, 40, 40, 41], 8)):
        ends_E = torch.tensor(ends, device=DEVICE)
        assert gather_gemm.block_table(ends_E, ends[-1] + 3, block) == gather_gemm.block_table_reference(ends_E, block)


# Each activation once, gated or not (f and f' are shared by both forms; the gated form is checked with half of them).
ACTIVATIONS = {member.value: member.value in ("gelu", "silu", "relu", "gpt_oss_glu") for member in ActivationType}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_gather_gemm_fuses_the_gather_bias_and_activation(name):
    # layer_1 of a plan: token rows read by index, bias, activation epilogue; then the activation's backward kernel.
    plan, gated = random_plan(), ACTIVATIONS[name]
    out_features = 24 if gated else 12
    x_TH, weight_EOH, bias_EO = randn(11, HIDDEN, seed=1), randn(5, out_features, HIDDEN, seed=2), randn(5, out_features, seed=3)
    options = {"bias_EO": bias_EO, "index_N": plan.token_N, "activation": name, "gated": gated, "limit": LIMIT, "keep_hidden": True}
    y_NI, hidden_NO = gather_gemm.gather_gemm(x_TH, weight_EOH, plan.ends_E, **options)
    expected_NI, expected_NO = gather_gemm.gather_gemm_reference(x_TH, weight_EOH, plan.ends_E, **options)
    assert_close(y_NI, expected_NI, "output")
    assert_close(hidden_NO, expected_NO, "hidden")
    assert torch.equal(y_NI[~plan.real_N], torch.zeros_like(y_NI[~plan.real_N]))

    grad_NI = randn(*y_NI.shape, seed=4)
    grad_NO = activation.activation_backward(hidden_NO, grad_NI, plan.ends_E, name, gated=gated, limit=LIMIT)
    expected = activation.activation_backward_reference(expected_NO, grad_NI, plan.ends_E, name, gated=gated, limit=LIMIT)
    assert_close(grad_NO, expected, "activation gradient")
    assert torch.equal(grad_NO[~plan.real_N], torch.zeros_like(grad_NO[~plan.real_N]))


def test_gather_gemm_on_gathered_rows_scattered_output_and_a_transposed_weight():
    # Rows already gathered (no index, no sentinels), an expert with two blocks of rows, a strided weight view.
    ends_E = torch.tensor([3, 3, 21, 22], device=DEVICE)
    rows_NI, weight_EIO = randn(22, 12, seed=1), randn(4, 12, HIDDEN, seed=2).transpose(1, 2)  # [E, H, I] as a view
    order_N = torch.randperm(22, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    for options in ({}, {"out_index_N": order_N, "out_rows": 25}):
        y, _ = gather_gemm.gather_gemm(rows_NI, weight_EIO, ends_E, sentinels=False, **options)
        expected, _ = gather_gemm.gather_gemm_reference(rows_NI, weight_EIO, ends_E, **options)
        assert_close(y, expected, f"output {sorted(options)}")


def test_grouped_xty_gives_the_weight_and_bias_gradients():
    plan = random_plan()
    grad_NO, x_TH = randn(22, 24, seed=1), randn(11, HIDDEN, seed=2)
    for options in ({"index_N": plan.token_N, "bias": True}, {}):
        x = x_TH if options else randn(22, HIDDEN, seed=3)
        grad_weight, grad_bias = grouped_xty.grouped_xty(grad_NO, x, plan.ends_E, **options)
        expected_weight, expected_bias = grouped_xty.grouped_xty_reference(grad_NO, x, plan.ends_E, **options)
        assert_close(grad_weight, expected_weight, "weight gradient")
        assert torch.equal(grad_weight[1], torch.zeros_like(grad_weight[1]))  # expert 1 has no rows
        if options:
            assert_close(grad_bias, expected_bias, "bias gradient")


def test_expert_linear_op_backward_matches_the_reference():
    # The custom op's autograd (activation backward, input gradient through the index, XᵀY) against autograd
    # through the torch reference.
    plan = random_plan()
    inputs = [randn(11, HIDDEN, seed=1), randn(5, 24, HIDDEN, seed=2), randn(5, 24, seed=3)]
    grad_NI = randn(22, 12, seed=4)
    results = []
    for function in ("op", "reference"):
        leaves = [tensor.clone().requires_grad_() for tensor in inputs]
        if function == "op":
            y, _ = ops.expert_linear(*leaves, plan.token_N, plan.ends_E, True, "silu", True, 0.0, True)
        else:
            y, _ = gather_gemm.gather_gemm_reference(leaves[0], leaves[1], plan.ends_E, bias_EO=leaves[2], index_N=plan.token_N, activation="silu", gated=True)
        (y * grad_NI).sum().backward()
        results.append([y.detach(), *(leaf.grad for leaf in leaves)])
    for what, actual, expected in zip(("output", "input", "weight", "bias"), *results, strict=True):
        assert_close(actual, expected, what)


def test_the_ops_have_fake_implementations_and_autograd():
    # What torch.compile needs of a custom op (schema, fake tensors, autograd registration, AOT dispatch).
    plan = random_plan()
    args = (
        randn(11, HIDDEN, seed=1).requires_grad_(), randn(5, 24, HIDDEN, seed=2).requires_grad_(), randn(5, 24, seed=3).requires_grad_(),
        plan.token_N, plan.ends_E, True, "gelu", True, 0.0, True,
    )
    torch.library.opcheck(ops.expert_linear, args, test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


BASE = {
    "type": "moe", "experts": 5, "experts_per_token": 2, "intermediate_size": 12, "gated": True, "add_linear_biases": True,
    "pre_norm": {"type": "rms_norm"}, "auxiliary_loss_coefficient": 0.05, "z_loss_coefficient": 0.01,
}
LAYERS = {  # (config changes, tokens, with a token mask)
    "gated-silu-biases-mask": ({}, 11, True),
    "capacity-drops-gelu-I>H-recompute": (
        {"capacity_factor": 0.6, "gated": False, "activation": "gelu", "intermediate_size": 24, "recompute_level": "activation_and_input"}, 13, False,
    ),
    "one-expert": ({"experts": 1, "experts_per_token": 1, "activation": "relu", "add_linear_biases": False}, 9, True),
    "k8-gpt_oss_glu-I<H": ({"experts": 9, "experts_per_token": 8, "activation": "gpt_oss_glu", "activation_limit": LIMIT, "intermediate_size": 8}, 5, False),
    "idle-experts-weight-on-input-shared": (
        {"experts": 9, "shared_experts": 1, "experts_per_token": 1, "router_weight_on_input": True, "normalize_expert_weights": False,
         "activation": "squared_relu", "gated": False},
        3, False,
    ),
}


@pytest.mark.parametrize("case", LAYERS)
def test_layer_with_triton_kernels_matches_looped(case):
    changes, tokens, masked = LAYERS[case]
    data = {**BASE, **changes}
    reference = build({**data, "implementation": "looped"}, HIDDEN, dtype=torch.float32).to(DEVICE).train()
    layer = build({**data, "dropless_kernel": "triton"}, HIDDEN, dtype=torch.float32).to(DEVICE).train()
    x, grad = randn(tokens, HIDDEN, seed=1), randn(tokens, HIDDEN, seed=2)
    kwargs = {"token_mask": (torch.rand(tokens, generator=torch.Generator().manual_seed(3)) > 0.3).to(DEVICE)} if masked else {}
    expected = forward_backward(reference, x, grad, **kwargs)
    actual = forward_backward(layer, x, grad, **kwargs)
    assert layer.experts.kernels.uses_triton(x)
    assert_close(actual[0], expected[0], "output")
    assert_close(actual[1], expected[1], "input gradient")
    assert actual[2].keys() == expected[2].keys()
    for name in expected[2]:  # router.weight's gradient comes through the routing weights
        assert_close(actual[2][name], expected[2][name], name)
    assert torch.equal(layer.stats["tokens_per_expert"], reference.stats["tokens_per_expert"])
    if masked:
        mask = kwargs["token_mask"]
        assert torch.equal(actual[0][~mask], torch.zeros_like(actual[0][~mask]))
        assert torch.equal(actual[1][~mask], torch.zeros_like(actual[1][~mask]))
    if "capacity_factor" in changes:
        assert layer.stats["dropped_tokens"] > 0
    idle = layer.stats["tokens_per_expert"] == 0
    if case.startswith("idle"):
        assert idle.sum() >= 5
    assert torch.equal(actual[2]["experts.layer_1.weight"][idle], torch.zeros_like(actual[2]["experts.layer_1.weight"][idle]))


def test_the_experts_compile_as_one_graph_with_the_triton_kernels():
    # torch.compile(fullgraph=True) sees the kernels as custom ops (fake implementations, registered backward). The
    # experts' two steps with the plan of a masked batch, as the layer calls them (the rest of the layer is compiled
    # in test_compile.py); aot_eager traces the graph inductor would get without generating code.
    import torch._dynamo

    torch._dynamo.reset()
    experts = build({**BASE, "dropless_kernel": "triton"}, HIDDEN, dtype=torch.float32).to(DEVICE).experts
    plan = random_plan()

    def step(x_TH):
        return experts.second(experts.first(x_TH, plan, gathered=False), plan)

    results = []
    for function in (step, torch.compile(step, fullgraph=True, backend="aot_eager")):
        x_TH = randn(11, HIDDEN, seed=1).requires_grad_()
        experts.zero_grad(set_to_none=True)
        y_NH = function(x_TH)
        (y_NH * randn(22, HIDDEN, seed=2)).sum().backward()
        results.append([y_NH.detach(), x_TH.grad, *(p.grad for p in experts.parameters())])
    for what, actual, expected in zip(("output", "input", "weight 1", "bias 1", "weight 2", "bias 2"), *results[::-1], strict=True):
        assert_close(actual, expected, what)


def test_experts_on_the_rows_of_an_expert_parallel_exchange():
    # Expert parallelism hands GroupedExperts the received rows sorted by local expert, with a plan whose
    # token_N is arange and without sentinels: forward(rows, plan, gathered=True). Also a rank that receives none.
    data = {**BASE, "experts": 4}
    layers = {kernel: build({**data, "dropless_kernel": kernel}, HIDDEN, dtype=torch.float32).to(DEVICE) for kernel in ("torch", "triton")}
    for rows in (13, 0):
        counts_E = torch.tensor([5, 0, 8, 0] if rows else [0, 0, 0, 0], device=DEVICE)
        plan = permute(
            torch.repeat_interleave(torch.arange(4, device=DEVICE), counts_E).unsqueeze(1), randn(rows, 1, seed=4).abs(), 4, sentinels=False
        )
        results = {}
        for kernel, layer in layers.items():
            rows_MH = randn(rows, HIDDEN, seed=5).requires_grad_()
            layer.zero_grad(set_to_none=True)
            y_MH = layer.experts(rows_MH, plan, gathered=True)
            (y_MH * randn(rows, HIDDEN, seed=6)).sum().backward()
            results[kernel] = [y_MH.detach(), rows_MH.grad, *(p.grad for p in layer.experts.parameters())]
        for actual, expected in zip(results["triton"], results["torch"], strict=True):
            assert_close(actual, expected, f"{rows} rows")


def test_auto_runs_torch_on_cpu_and_triton_needs_the_package(monkeypatch):
    version = kernels.triton_version()
    auto = kernels.select_kernels(DroplessKernel.auto)
    assert auto.reason == (
        f"Triton kernels for CUDA inputs in float32/bfloat16/float16, torch kernels otherwise (dropless_kernel: auto; triton {version})"
    )
    assert not auto.uses_triton(torch.zeros(1)) and not auto.uses_triton(torch.zeros(1, dtype=torch.float64))
    monkeypatch.setattr(kernels, "triton_version", lambda: None)
    assert kernels.select_kernels(DroplessKernel.auto).reason == (
        "torch kernels (dropless_kernel: auto; triton is not installed: pip install 'fastmoe_cfg[triton]')"
    )
    with pytest.raises(ModuleNotFoundError, match=r"^dropless_kernel: triton needs the triton package, which is not installed"):
        kernels.select_kernels(DroplessKernel.triton)


@pytest.mark.skipif(DEVICE != "cpu", reason="the error is about CPU tensors")
def test_triton_on_a_cpu_tensor_without_the_interpreter_is_an_error_naming_the_field(monkeypatch):
    layer = build({**BASE, "dropless_kernel": "triton"}, HIDDEN, dtype=torch.float32)
    monkeypatch.setattr(tuning, "INTERPRETED", False)
    with pytest.raises(RuntimeError, match=r"^dropless_kernel: triton runs on CUDA tensors; this input is on cpu, .* TRITON_INTERPRET=1"):
        layer(randn(3, HIDDEN))


def test_the_choice_is_logged_once_per_layer_at_build(caplog):
    with caplog.at_level(logging.INFO, logger="fastmoe_cfg.layers.moe.layer"):
        layer = build({**BASE, "dropless_kernel": "torch"}, HIDDEN, dtype=torch.float32)
        looped = build({**BASE, "implementation": "looped"}, HIDDEN, dtype=torch.float32)
        layer(randn(3, HIDDEN))
        looped(randn(3, HIDDEN))
    assert [record.getMessage() for record in caplog.records] == [
        "MoE layer (5 routed experts, hidden 16, intermediate 12): dropless experts with torch kernels (dropless_kernel: torch)",
        "MoE layer (5 routed experts, hidden 16, intermediate 12): looped experts (implementation: looped)",
    ]


def test_grouped_experts_default_to_the_torch_kernels():
    # GroupedExperts built directly (plugins) keep the torch kernels.
    experts = GroupedExperts(torch.nn.Linear(1, 1), torch.nn.Linear(1, 1), activation=ActivationType.silu, gated=False)
    assert experts.kernels is kernels.TORCH_KERNELS
