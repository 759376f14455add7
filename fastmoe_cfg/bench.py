"""`fastmoe-cfg bench`: one MLP block's implementations timed against an equal-FLOP dense MLP, in one run.

For a `type: moe` block, every implementation that runs here is measured: `looped` (one
matmul per expert), `dropless` with the torch grouped GEMM and, where the config has a
`dropless_kernel` field and Triton can run (a CUDA device with Triton installed, or the
CPU under `TRITON_INTERPRET=1`), `dropless` with the Triton kernels. Beside them runs a
dense MLP of width k · intermediate_size + the shared experts' width (same gated
activation, no biases): the FLOPs of the experts, without the router's. A `type: mlp`
block is measured alone (its own dense baseline).

Method: the layers are built under one seed (same weights and router for every
implementation), in train mode; after one untimed pass each (compilation, the memory
measurement and, for the MoE rows, the routing loads), `warmup` untimed and `repeats`
timed rounds run every layer once per round, in an order rotated each round so that no
layer always follows another; the times reported are medians. Each pass times its
forward and its forward+backward (the device synchronised at both marks on CUDA).

Useful FLOPs are the counts `fastmoe-cfg explain` prints (`schemas.counts.count_layer`):
forward = tokens · flops_per_token; forward+backward = 3 × forward (each forward matmul
has two in backward: the input and the weight gradients). Memory: on CUDA, the peak
allocated during one forward+backward above what was allocated before it; on the CPU,
the bytes of the tensors saved for backward (`torch.autograd.graph.saved_tensors_hooks`,
each storage counted once).

torch is imported inside the functions: the command line imports this module without it.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

JSON_FORMAT = 1
DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
FLOP_CONVENTION = "forward = tokens x explain's flops_per_token; forward+backward = 3 x forward"
NO_TORCH = (
    "fastmoe-cfg bench needs torch, which is not installed; install it with: pip install 'fastmoe_cfg[torch]' "
    "(validate, explain, schema and docs work without it)"
)


class BenchError(Exception):
    """A request bench cannot run (a usage error, exit 2): no torch, no such device, a block type it does not measure."""


@dataclass
class Row:
    """One measured layer. Times in milliseconds (medians), TFLOP/s in useful FLOPs, ratios of forward+backward times."""

    name: str
    implementation: str | None
    kernel: str | None
    forward_ms: float
    forward_backward_ms: float
    forward_ms_range: tuple[float, float]
    forward_backward_ms_range: tuple[float, float]
    samples: int
    flops_per_token: int
    forward_tflops: float
    forward_backward_tflops: float
    vs_dense: float
    vs_dense_forward: float
    vs_looped: float | None
    vs_looped_forward: float | None
    memory_bytes: int | None
    compiled: bool


@dataclass
class Report:
    type: str
    hidden_size: int
    tokens: int
    dtype: str
    device: str
    compiled: bool
    repeats: int
    warmup: int
    torch: str
    threads: int
    flops_per_token: int
    dense_intermediate_size: int
    dense_flops_per_token: int
    memory: str  # "peak_allocated" (CUDA) or "saved_for_backward" (CPU)
    rows: list[Row]
    loads: list[int] | None = None
    loads_from: str | None = None
    experts_per_token: int | None = None
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        rows = data.pop("rows")
        loads, loads_from = data.pop("loads"), data.pop("loads_from")
        return {
            "format": JSON_FORMAT,
            **data,
            "flops": {
                "per_token": self.flops_per_token,
                "forward": self.tokens * self.flops_per_token,
                "forward_backward": 3 * self.tokens * self.flops_per_token,
                "convention": FLOP_CONVENTION,
            },
            "rows": [{**row, "forward_ms_range": list(row["forward_ms_range"]), "forward_backward_ms_range": list(row["forward_backward_ms_range"])} for row in rows],
            "loads": None if loads is None else {"tokens_per_expert": loads, "from": loads_from, "assignments": sum(loads)},
        }


def import_torch() -> Any:
    """torch, or BenchError with the install command."""
    try:
        import torch
    except ImportError:
        raise BenchError(NO_TORCH) from None
    return torch


def triton_runs(device_type: str) -> tuple[bool, str]:
    """Whether the Triton kernels can run on this device type, and why (not)."""
    try:
        import importlib.util

        installed = importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):
        installed = False
    if not installed:
        return False, "Triton is not installed (pip install 'fastmoe_cfg[triton]')"
    if device_type == "cuda":
        return True, "CUDA device with Triton installed"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True, "Triton's interpreter (TRITON_INTERPRET=1) on the CPU: checks the kernels, is not fast"
    return False, f"Triton runs on a {device_type} tensor only under TRITON_INTERPRET=1"


def variants(config: Any, device_type: str) -> tuple[list[tuple[str, Any]], list[dict[str, str]]]:
    """The (row name, config) pairs to measure and the skipped ones with the reason.

    A `type: moe` config gives looped, dropless (torch) and dropless (triton) where each runs;
    with no `dropless_kernel` field (an older version), one `dropless` row. `type: mlp`: itself.
    """
    if config.type == "mlp":
        return [("mlp", config)], []
    if config.type != "moe":
        raise BenchError(
            f"bench measures a block of type moe or mlp, not {config.type}"
            + (": select one block of the stack with --key" if config.type == "stack" else "")
        )
    base = config.to_dict()
    cls = type(config)
    has_kernel = "dropless_kernel" in cls.model_fields
    if has_kernel:
        base.pop("dropless_kernel", None)  # dropless_kernel other than auto with looped is a config error
    chosen = [("looped", cls.from_dict({**base, "implementation": "looped"}))]
    skipped = []
    if not has_kernel:
        chosen.append(("dropless", cls.from_dict({**base, "implementation": "dropless"})))
        return chosen, skipped
    chosen.append(("dropless (torch)", cls.from_dict({**base, "implementation": "dropless", "dropless_kernel": "torch"})))
    runs, reason = triton_runs(device_type)
    if runs:
        chosen.append(("dropless (triton)", cls.from_dict({**base, "implementation": "dropless", "dropless_kernel": "triton"})))
    else:
        skipped.append({"name": "dropless (triton)", "reason": reason})
    return chosen, skipped


def dense_config(config: Any) -> tuple[Any, int]:
    """The equal-FLOP dense MLP (the experts' FLOPs, not the router's) and its width."""
    from fastmoe_cfg.schemas.mlp import MLPConfig

    if config.type == "mlp":
        return config, config.intermediate_size
    width = config.experts_per_token * config.intermediate_size + config.shared_intermediate_size()
    fields = {"intermediate_size": width, "gated": config.gated, "activation": config.activation.value, "add_linear_biases": False}
    if config.activation_limit is not None:
        fields["activation_limit"] = config.activation_limit
    return MLPConfig.from_dict(fields), width


def _device(torch: Any, device: str | None) -> Any:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise BenchError(f"--device {device}: bench runs on cpu, cuda or cuda:N")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise BenchError(f"--device {device}: no CUDA device here (torch.cuda.is_available() is False)")
    return resolved


def _median_range(values: list[float]) -> tuple[float, tuple[float, float]]:
    return 1000 * statistics.median(values), (1000 * min(values), 1000 * max(values))


@dataclass
class Setup:
    """The layers of one measurement, built (`prepare`) and not yet run (`measure`), by row name, dense first.

    The MoE rows share one set of parameters (built once; the others on the meta device, then tied to it):
    the same weights for every implementation, and the memory of one layer's weights.
    """

    config: Any
    hidden_size: int
    tokens: int
    device: Any
    dtype: str
    torch_dtype: Any
    layers: dict[str, Any]
    configs: dict[str, Any]
    compiled: dict[str, bool]
    row_flops: dict[str, int]
    baseline: str
    flops_per_token: int
    dense_flops_per_token: int
    dense_intermediate_size: int
    compile: bool
    skipped: list[dict[str, str]]
    notes: list[str]


def tie(source: Any, target: Any) -> None:
    """Make `target`'s parameters `source`'s (the same objects) and its buffers copies of `source`'s, by name."""
    parameters, buffers = dict(source.named_parameters()), dict(source.named_buffers())
    for name, _ in list(target.named_parameters()):
        owner, _, leaf = name.rpartition(".")
        target.get_submodule(owner)._parameters[leaf] = parameters[name]
    for name, _ in list(target.named_buffers()):
        owner, _, leaf = name.rpartition(".")
        target.get_submodule(owner)._buffers[leaf] = buffers[name].clone()


def prepare(
    config: Any,
    hidden_size: int,
    *,
    tokens: int = 4096,
    dtype: str | None = None,
    device: str | None = None,
    compile: bool = False,
    names: list[str] | None = None,
) -> Setup:
    """Build the dense MLP and `config`'s implementations (see `variants`; `names`: only these) for `measure`.

    `dtype`: fp32 | bf16 | fp16 (default bf16 on CUDA, fp32 on the CPU); `device`: default cuda when available.
    A variant that cannot be built here is skipped with its reason.
    """
    torch = import_torch()
    from fastmoe_cfg.schemas.counts import count_layer

    where = _device(torch, device)
    dtype = dtype or ("bf16" if where.type == "cuda" else "fp32")
    if dtype not in DTYPES:
        raise BenchError(f"--dtype {dtype!r} is not one of: {', '.join(DTYPES)}")
    torch_dtype = getattr(torch, DTYPES[dtype])
    chosen, skipped = variants(config, where.type)
    if names is not None:
        chosen = [(name, variant) for name, variant in chosen if name in names]
    dense, width = dense_config(config)
    flops = count_layer(config, hidden_size).flops_per_token
    dense_flops = count_layer(dense, hidden_size).flops_per_token
    notes = []
    layers: dict[str, Any] = {}
    compiled: dict[str, bool] = {}
    shared = None  # the first MoE layer built: the others take its parameters
    measured = [("dense", dense)] if config.type != "mlp" else []
    for name, variant in [*measured, *chosen]:
        torch.manual_seed(0)  # the same router and expert weights for every implementation
        try:
            if shared is None or name == "dense":
                layer = variant.build(hidden_size, device=where, dtype=torch_dtype)
                shared = layer if name != "dense" else None
            else:
                layer = variant.build(hidden_size, device="meta", dtype=torch_dtype)
                tie(shared, layer)
        except (ValueError, RuntimeError, ImportError, NotImplementedError) as exc:
            skipped.append({"name": name, "reason": f"{type(exc).__name__}: {exc}"})
            continue
        compiled[name] = compile and name != "looped"
        layers[name] = torch.compile(layer.train(), fullgraph=True) if compiled[name] else layer.train()
    if compile and "looped" in layers:
        notes.append("looped runs eagerly under --compile: its per-expert loop breaks a full graph")
    baseline = "dense" if config.type != "mlp" else chosen[0][0]
    if baseline not in layers:
        raise BenchError(f"the {baseline} layer could not be built: {skipped[-1]['reason']}")
    return Setup(
        config=config, hidden_size=hidden_size, tokens=tokens, device=where, dtype=dtype, torch_dtype=torch_dtype, layers=layers,
        configs=dict(chosen), compiled=compiled, row_flops={name: dense_flops if name == "dense" else flops for name in layers},
        baseline=baseline, flops_per_token=flops, dense_flops_per_token=dense_flops, dense_intermediate_size=width,
        compile=compile, skipped=skipped, notes=notes,
    )


def inputs(setup: Setup) -> tuple[Any, Any]:
    """The input x [T, H] (requires grad) and the output gradient of every pass: seeded by the token count."""
    torch = import_torch()
    generator = torch.Generator(device="cpu").manual_seed(setup.tokens)
    x = torch.randn(setup.tokens, setup.hidden_size, generator=generator).to(setup.device, setup.torch_dtype).requires_grad_()
    grad = torch.randn(setup.tokens, setup.hidden_size, generator=generator).to(setup.device, setup.torch_dtype)
    return x, grad


def run(config: Any, hidden_size: int, *, tokens: int = 4096, dtype: str | None = None, device: str | None = None,
        compile: bool = False, names: list[str] | None = None, **options: Any) -> Report:
    """`measure(prepare(...))`: the options of both."""
    setup = prepare(config, hidden_size, tokens=tokens, dtype=dtype, device=device, compile=compile, names=names)
    return measure(setup, **options)


def measure(
    setup: Setup,
    *,
    repeats: int = 10,
    warmup: int = 2,
    looped_repeats: int | None = None,
    on_start: Callable[[int], None] | None = None,
    on_step: Callable[[str], None] | None = None,
) -> Report:
    """Time the layers of `setup`; see the module docstring for the method.

    `looped_repeats`: fewer timed rounds for the looped row (slow at large shapes).
    `on_start(total_steps)` and `on_step(description)` drive a progress bar.
    """
    torch = import_torch()
    layers, compiled, where, tokens = setup.layers, setup.compiled, setup.device, setup.tokens
    notes = list(setup.notes)
    x, grad = inputs(setup)
    cuda = where.type == "cuda"

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(where)

    def step(layer: Any) -> tuple[float, float]:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        sync()
        start = time.perf_counter()
        out = layer(x)
        sync()
        middle = time.perf_counter()
        out.backward(grad)
        sync()
        return middle - start, time.perf_counter() - start

    def memory(layer: Any) -> int | None:
        layer.zero_grad(set_to_none=True)
        x.grad = None
        if cuda:
            sync()
            torch.cuda.reset_peak_memory_stats(where)
            before = torch.cuda.memory_allocated(where)
            layer(x).backward(grad)
            sync()
            return torch.cuda.max_memory_allocated(where) - before
        storages: dict[int, int] = {}

        def pack(tensor: Any) -> Any:
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            return tensor

        try:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                out = layer(x)
        except RuntimeError:  # a compiled graph may refuse the hooks
            return None
        out.backward(grad)
        return sum(storages.values())

    order = list(layers)
    rounds = warmup + repeats
    limit = {name: warmup + (looped_repeats if name == "looped" and looped_repeats else repeats) for name in order}
    if on_start:
        on_start(2 * len(order) + sum(limit.values()))
    memory_bytes: dict[str, int | None] = {}
    loads = loads_from = None
    for name in order:
        if on_step:
            on_step(f"{name}: first pass" + (" (compiling)" if compiled[name] else ""))
        step(layers[name])
        if on_step:
            on_step(f"{name}: memory")
        memory_bytes[name] = memory(layers[name])
        stats = getattr(layers[name], "stats", None)
        if loads is None and name != "dense" and stats and "tokens_per_expert" in stats:
            loads, loads_from = [int(value) for value in stats["tokens_per_expert"].tolist()], name
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in order}
    for round_ in range(rounds):
        shift = round_ % len(order)  # rotated so that no layer always runs right after another
        for name in order[shift:] + order[:shift]:
            if round_ >= limit[name]:
                continue
            elapsed = step(layers[name])
            if round_ >= warmup:
                times[name].append(elapsed)
            if on_step:
                on_step(f"{name}: round {round_ + 1}/{limit[name]}")
    if looped_repeats and "looped" in layers and looped_repeats != repeats:
        notes.append(f"looped: median of {looped_repeats} rounds (the others: {repeats})")

    medians = {}
    for name in order:
        forward_ms, forward_range = _median_range([forward for forward, _ in times[name]])
        total_ms, total_range = _median_range([total for _, total in times[name]])
        medians[name] = (forward_ms, total_ms, forward_range, total_range)
    rows = []
    for name in order:
        forward_ms, total_ms, forward_range, total_range = medians[name]
        dense_forward, dense_total = medians[setup.baseline][:2]
        looped = medians.get("looped")
        forward_flops = tokens * setup.row_flops[name]
        variant = setup.configs.get(name)
        rows.append(
            Row(
                name=name,
                implementation=None if variant is None or variant.type != "moe" else variant.implementation.value,
                kernel=_kernel(variant),
                forward_ms=round(forward_ms, 4),
                forward_backward_ms=round(total_ms, 4),
                forward_ms_range=(round(forward_range[0], 4), round(forward_range[1], 4)),
                forward_backward_ms_range=(round(total_range[0], 4), round(total_range[1], 4)),
                samples=len(times[name]),
                flops_per_token=setup.row_flops[name],
                forward_tflops=forward_flops / forward_ms / 1e9,
                forward_backward_tflops=3 * forward_flops / total_ms / 1e9,
                vs_dense=total_ms / dense_total,
                vs_dense_forward=forward_ms / dense_forward,
                vs_looped=None if looped is None else total_ms / looped[1],
                vs_looped_forward=None if looped is None else forward_ms / looped[0],
                memory_bytes=memory_bytes[name],
                compiled=compiled[name],
            )
        )
    return Report(
        type=setup.config.type,
        hidden_size=setup.hidden_size,
        tokens=tokens,
        dtype=setup.dtype,
        device=str(where),
        compiled=setup.compile,
        repeats=repeats,
        warmup=warmup,
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        flops_per_token=setup.flops_per_token,
        dense_intermediate_size=setup.dense_intermediate_size,
        dense_flops_per_token=setup.dense_flops_per_token,
        memory="peak_allocated" if cuda else "saved_for_backward",
        rows=rows,
        loads=loads,
        loads_from=loads_from,
        experts_per_token=getattr(setup.config, "experts_per_token", None),
        skipped=setup.skipped,
        notes=notes,
    )


def _kernel(variant: Any) -> str | None:
    if variant is None or variant.type != "moe" or variant.implementation.value == "looped":
        return None
    kernel = getattr(variant, "dropless_kernel", None)
    return "torch" if kernel is None else getattr(kernel, "value", kernel)


# ------------------------------------------------------------------------------------------ rendering
BARS = " ▁▂▃▄▅▆▇█"
SPARK_BELOW = 17  # up to 16 experts: one line each with a bar; more: one character per expert
CHART_WIDTH = 40


def format_bytes(count: int | None) -> str:
    if count is None:
        return "-"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def load_chart(loads: list[int], width: int = CHART_WIDTH) -> list[str]:
    """Per-expert loads as text: a bar per expert (few experts) or one block character per expert, 64 a line."""
    top = max(loads) or 1
    mean = sum(loads) / len(loads)
    summary = f"min {min(loads)}, mean {mean:.1f}, max {max(loads)} (max/mean {max(loads) / mean if mean else 0:.2f})"
    if len(loads) < SPARK_BELOW:
        digits = len(str(len(loads) - 1))
        count_width = len(str(top))
        lines = [f"expert {expert:>{digits}} {load:>{count_width}} " + "█" * round(width * load / top) for expert, load in enumerate(loads)]
        return [*lines, summary]
    per_line = 64
    lines = []
    for start in range(0, len(loads), per_line):
        chunk = loads[start : start + per_line]
        spark = "".join(BARS[round((len(BARS) - 1) * load / top)] if load else BARS[0] for load in chunk)
        lines.append(f"experts {start:>3}-{start + len(chunk) - 1:>3} |{spark}|")
    return [*lines, f"(one character per expert, full block = {top}) " + summary]


def table_rows(report: Report) -> list[list[str]]:
    """The table's cells, row by row (tests read them)."""
    out = []
    for row in report.rows:
        out.append(
            [
                row.name,
                f"{row.forward_ms:.3f}",
                f"{row.forward_backward_ms:.3f}",
                f"{row.forward_tflops:.3g}",
                f"{row.forward_backward_tflops:.3g}",
                f"{row.vs_dense:.2f}x",
                "-" if row.vs_looped is None else f"{row.vs_looped:.2f}x",
                format_bytes(row.memory_bytes),
            ]
        )
    return out


def table_columns(report: Report) -> list[str]:
    memory = "peak memory" if report.memory == "peak_allocated" else "saved for bwd"
    return ["implementation", "fwd ms", "fwd+bwd ms", "TFLOP/s fwd", "TFLOP/s fwd+bwd", "vs dense", "vs looped", memory]


def heading(report: Report, title: str) -> str:
    compiled = ", torch.compile(fullgraph=True)" if report.compiled else ""
    return (
        f"{title}: {report.type}, hidden {report.hidden_size}, {report.tokens} tokens, {report.dtype} on {report.device}{compiled}; "
        f"median of {report.repeats} after {report.warmup} warm-up, interleaved; torch {report.torch}, {report.threads} threads"
    )


def footnotes(report: Report) -> list[str]:
    lines = [
        f"Useful FLOPs (explain's counts): {report.flops_per_token:,} per token; {FLOP_CONVENTION}.",
    ]
    if report.type != "mlp":
        lines.append(
            f"dense: an MLP of width {report.dense_intermediate_size} (k x intermediate + shared), {report.dense_flops_per_token:,} "
            "FLOPs per token (the experts' FLOPs, not the router's); vs dense and vs looped are forward+backward time ratios."
        )
    if report.memory == "peak_allocated":
        lines.append("peak memory: the most allocated during one forward+backward above what was allocated before it.")
    else:
        lines.append("saved for bwd: bytes of the tensors autograd keeps for backward (each storage once).")
    lines += [f"not measured: {item['name']}: {item['reason']}" for item in report.skipped]
    lines += report.notes
    return lines
