"""Train a small byte-level language model whose MLP blocks are fastmoe_cfg layers, and plot what the router did.

    python examples/train_moe_lm.py --seed 0 --steps 40 --out runs/moe
    python examples/train_moe_lm.py --compare --steps 150 --out runs/compare

The model: byte embedding + learned positions, `model.layers` pre-norm blocks (causal self-attention through
torch's scaled_dot_product_attention, then the MLP that `config.build(hidden_size)` returns for `model.mlp`),
a final RMS norm and a linear head over the 256 byte values. The data is text already on every machine: the
Python standard library's own top-level source files, in name order; every tenth file is held out for the
evaluation loss. Nothing is downloaded.

The MoE layer's public API is all the loop uses: its load-balancing and z-losses are injected into backward by
the layer (nothing is added to the loss here), `layer.stats` gives the per-forward statistics that go into
`metrics.json`, and `routing: aux_free` layers get `layer.update_bias()` after each optimizer step.

Writes into `--out`: `metrics.json` ({"steps": [{"step", "loss", "tokens_per_expert", "max_over_mean_load",
"aux_losses"}, ...]}, one entry per MoE layer in the last three), `loss.png`, `expert_load.png` (one panel per MoE
layer). `--compare` trains the same model three ways (a dense MLP of equal active FLOPs, MoE with `aux_loss`
routing, MoE with `aux_free` routing), each into its own sub-folder, and writes `compare_loss.png` and
`compare.json`. Needs torch and matplotlib: pip install 'fastmoe_cfg[examples]'.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from fastmoe_cfg import ConfigError, load_config

HERE = Path(__file__).resolve().parent
DEFAULT_CONFIG = HERE / "train_moe_lm.yaml"
INSTALL_HINT = "pip install 'fastmoe_cfg[examples]'"
MLP_KEY = "model.mlp"
VOCABULARY = 256  # bytes
console = Console()


# --------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class Settings:
    """`model` (without `mlp`) and `train` of the config file; `mlp` is read by fastmoe_cfg's loader."""

    hidden_size: int = 128
    layers: int = 2
    heads: int = 4
    batch_size: int = 32
    sequence_length: int = 128
    learning_rate: float = 3e-3


SECTIONS = {"model": ("hidden_size", "layers", "heads", "mlp"), "train": ("batch_size", "sequence_length", "learning_rate")}


def read_settings(path: Path) -> Settings:
    """The model's and the loop's settings; SystemExit naming the key on an unknown key or a bad value."""
    from ruamel.yaml import YAML

    data = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8")) or {}
    problems, values = [], {}
    if not isinstance(data, dict):
        raise SystemExit(f"{path}: expected a mapping with `model:` (and optionally `train:`)")
    for section, known in SECTIONS.items():
        part = data.get(section) or {}
        if not isinstance(part, dict):
            problems.append(f"{section}: expected a mapping")
            continue
        for key, value in part.items():
            if key not in known:
                problems.append(f"{section}.{key}: unknown key (known: {', '.join(known)})")
            elif key != "mlp":
                values[key] = value
    for key, value in values.items():
        kind = type(getattr(Settings, key))
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and (kind is float or type(value) is int)
        if not ok:
            problems.append(f"{key}: expected a positive {kind.__name__}, got {value!r}")
    if problems:
        raise SystemExit("\n".join(f"{path}: {problem}" for problem in problems))
    settings = Settings(**{key: float(value) if key == "learning_rate" else value for key, value in values.items()})
    if settings.hidden_size % settings.heads:
        raise SystemExit(f"{path}: model.hidden_size ({settings.hidden_size}) must be a multiple of model.heads ({settings.heads})")
    return settings


def describe(mlp) -> str:
    if mlp.type not in ("mlp", "moe"):  # hybrid_moe, or a plugin's variant (type: expert_choice)
        return f"{mlp.type} MLP ({type(mlp).__name__})"
    if mlp.type != "moe":
        return f"dense MLP (intermediate {mlp.intermediate_size})"
    shared = f" + {mlp.shared_experts} shared" if mlp.shared_experts else ""
    return f"MoE {mlp.experts - mlp.shared_experts} experts{shared}, top-{mlp.experts_per_token}, {mlp.routing.value}"


def compare_variants(mlp) -> dict[str, Any]:
    """`--compare`: the dense MLP of equal active FLOPs and the MoE layer with aux_loss and with aux_free routing.

    The dense MLP keeps the fields both types have (gated, activation, biases, norms, initializations) with
    intermediate_size = experts_per_token · intermediate_size + the shared experts' width: per token, the same
    expert FLOPs as the MoE layer (the router's E·H multiply-adds are not matched).
    """
    from fastmoe_cfg.schemas import MLPBaseConfig, MLPConfig

    if mlp.type != "moe":
        raise SystemExit(f"--compare needs a `type: moe` config at {MLP_KEY}; this one is `type: {mlp.type}`")
    data = mlp.to_dict()
    shared = (mlp.shared_expert_intermediate_size or mlp.shared_experts * mlp.intermediate_size) if mlp.shared_experts else 0
    dense = {key: value for key, value in data.items() if key in MLPConfig.model_fields}
    dense.update(type="mlp", intermediate_size=mlp.experts_per_token * mlp.intermediate_size + shared)
    aux_free_only = ("bias_update_rate", "automatic_bias_update")
    aux_loss = {key: value for key, value in data.items() if key not in aux_free_only} | {"routing": "aux_loss"}
    aux_free = {**data, "routing": "aux_free"}
    return {name: MLPBaseConfig.from_dict(variant) for name, variant in (("dense", dense), ("aux_loss", aux_loss), ("aux_free", aux_free))}


# --------------------------------------------------------------------------- data
def corpus() -> tuple[bytes, bytes, int]:
    """(train bytes, held-out bytes, files): the standard library's top-level .py files in name order, every tenth held out."""
    stdlib = os.path.dirname(os.__file__)
    files = sorted(glob.glob(os.path.join(stdlib, "*.py")))
    if len(files) < 10:
        raise SystemExit(f"expected the Python standard library's sources in {stdlib}; found {len(files)} .py files")
    train, held_out = [], []
    for index, name in enumerate(files):
        with open(name, "rb") as file:
            (held_out if index % 10 == 9 else train).append(file.read())
    return b"\n".join(train), b"\n".join(held_out), len(files)


class Batches:
    def __init__(self, data: bytes, batch_size: int, sequence_length: int, seed: int):
        import torch

        self.data = torch.frombuffer(bytearray(data), dtype=torch.uint8).long()
        self.batch_size, self.sequence_length = batch_size, sequence_length
        self.generator = torch.Generator().manual_seed(seed)

    def next(self):
        import torch

        starts = torch.randint(0, len(self.data) - self.sequence_length - 1, (self.batch_size,), generator=self.generator)
        window = torch.arange(self.sequence_length + 1)
        tokens = self.data[starts[:, None] + window]
        return tokens[:, :-1], tokens[:, 1:]


# --------------------------------------------------------------------------- model
def build_model(settings: Settings, mlp):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            hidden = settings.hidden_size
            self.heads = settings.heads
            self.attention_norm = nn.RMSNorm(hidden)
            self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
            self.out = nn.Linear(hidden, hidden, bias=False)
            self.mlp_norm = nn.RMSNorm(hidden)
            self.mlp = mlp.build(hidden)  # the fastmoe_cfg layer: [batch, seq, hidden] -> same shape

        def forward(self, x):
            batch, sequence, hidden = x.shape
            q, k, v = self.qkv(self.attention_norm(x)).view(batch, sequence, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.out(attended.transpose(1, 2).reshape(batch, sequence, hidden))
            return x + self.mlp(self.mlp_norm(x))

    class ByteLM(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embedding = nn.Embedding(VOCABULARY, settings.hidden_size)
            self.position = nn.Parameter(torch.randn(settings.sequence_length, settings.hidden_size) * 0.02)
            self.blocks = nn.ModuleList(Block() for _ in range(settings.layers))
            self.norm = nn.RMSNorm(settings.hidden_size)
            self.head = nn.Linear(settings.hidden_size, VOCABULARY, bias=False)

        def forward(self, tokens):
            x = self.embedding(tokens) + self.position[: tokens.shape[1]]
            for block in self.blocks:
                x = block(x)
            return self.head(self.norm(x))

    return ByteLM()


def moe_layers(model) -> list:
    from fastmoe_cfg.layers import MoEMLP

    return [module for module in model.modules() if isinstance(module, MoEMLP)]


def parameter_counts(model) -> tuple[int, int]:
    """(total, active per token): an MoE layer's token uses experts_per_token of its routed experts."""
    total = sum(parameter.numel() for parameter in model.parameters())
    inactive = 0
    for layer in moe_layers(model):
        routed = layer.config.experts - layer.config.shared_experts
        experts = sum(parameter.numel() for name, parameter in layer.named_parameters() if name.startswith("experts."))
        inactive += experts // routed * (routed - layer.config.experts_per_token)
    return total, total - inactive


def learning_rate(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over the first 5% of the steps, then cosine decay to 10% of the peak."""
    warmup = max(1, steps // 20)
    if step <= warmup:
        return peak * step / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


# --------------------------------------------------------------------------- training
def train(settings: Settings, mlp, steps: int, seed: int, out: Path, *, label: str, eval_batches: int = 8) -> dict[str, Any]:
    """Train one model; write metrics.json, loss.png and expert_load.png into `out`; return the summary."""
    import torch
    import torch.nn.functional as F

    from fastmoe_cfg.layers import parameter_groups

    torch.manual_seed(seed)
    train_bytes, held_out_bytes, files = corpus()
    batches = Batches(train_bytes, settings.batch_size, settings.sequence_length, seed)
    model = build_model(settings, mlp)
    layers = moe_layers(model)
    groups = parameter_groups(model, lr=settings.learning_rate)  # honours lr_scale fields of the MLP config
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate, betas=(0.9, 0.95), weight_decay=0.01)
    updates_bias = [layer for layer in layers if layer.config.routing == "aux_free" and not layer.config.automatic_bias_update]
    total, active = parameter_counts(model)

    records: list[dict[str, Any]] = []
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
    )
    started = time.perf_counter()
    model.train()
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(label, total=steps, info="")
        for step in range(1, steps + 1):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, steps, settings.learning_rate) * group["lr_scale"]
            inputs, targets = batches.next()
            logits = model(inputs)
            loss = F.cross_entropy(logits.reshape(-1, VOCABULARY), targets.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # the MoE layers' aux losses reach the router here: the layers injected them
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            for layer in updates_bias:
                layer.update_bias()  # aux_free: move the correction bias by this step's loads
            records.append(record(step, loss.item(), layers))
            balance = max(records[-1]["max_over_mean_load"], default=None)
            info = f"loss {loss.item():.3f}" + ("" if balance is None else f"  max/mean load {balance:.2f}")
            progress.update(task, advance=1, info=info)
    seconds = time.perf_counter() - started
    eval_loss = evaluate(model, settings, held_out_bytes, seed, eval_batches)

    losses = [entry["loss"] for entry in records]
    window = min(10, len(losses))
    summary = {
        "label": label,
        "mlp": describe(mlp),
        "parameters": total,
        "active_parameters_per_token": active,
        "steps": steps,
        "loss_first_10": sum(losses[:window]) / window,
        "loss_last_10": sum(losses[-window:]) / window,
        "eval_loss": eval_loss,
        "eval_batches": eval_batches,
        "final_max_over_mean_load": records[-1]["max_over_mean_load"],
        "seconds": seconds,
        "tokens_per_second": steps * settings.batch_size * settings.sequence_length / seconds,
    }
    metrics = {
        "mlp_config": mlp.to_dict(resolved=True),
        "settings": asdict(settings),
        "seed": seed,
        "threads": torch.get_num_threads(),
        "data": {"source": "Python standard library, top-level .py files", "files": files, "train_bytes": len(train_bytes),
                 "held_out_bytes": len(held_out_bytes)},
        "summary": summary,
        "steps": records,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
    plot_loss({describe(mlp): losses}, out / "loss.png", title=f"Byte-level LM, {settings.layers} blocks, hidden {settings.hidden_size}, seed {seed}")
    if layers:
        plot_expert_load(records, out / "expert_load.png", title=describe(mlp))
    return summary


def record(step: int, loss: float, layers: list) -> dict[str, Any]:
    """One step of metrics.json: per MoE layer, the router's assignments per routed expert and the loss statistics."""
    tokens = [layer.stats["tokens_per_expert"].tolist() for layer in layers]
    return {
        "step": step,
        "loss": loss,
        "tokens_per_expert": tokens,
        "max_over_mean_load": [max(counts) * len(counts) / sum(counts) for counts in tokens],
        # Before coefficients; a loss whose coefficient is 0, or that this routing does not apply, is a monitoring value.
        "aux_losses": [{name: value.item() for name, value in layer.stats.items() if name.endswith("loss")} for layer in layers],
    }


def evaluate(model, settings: Settings, data: bytes, seed: int, batches: int) -> float:
    """Mean cross-entropy (nats per byte) on `batches` fixed batches of the held-out files."""
    import torch
    import torch.nn.functional as F

    source = Batches(data, settings.batch_size, settings.sequence_length, seed + 1)
    model.eval()
    with torch.no_grad():
        losses = []
        for _ in range(batches):
            inputs, targets = source.next()
            losses.append(F.cross_entropy(model(inputs).reshape(-1, VOCABULARY), targets.reshape(-1)).item())
    model.train()
    return sum(losses) / len(losses)


# --------------------------------------------------------------------------- plots
def pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit(f"the plots need matplotlib: {INSTALL_HINT}") from None
    matplotlib.use("Agg")  # files only, no window
    import matplotlib.pyplot as plt

    return plt


def smooth(values: list[float]) -> list[float]:
    """A centred moving mean over about 4% of the steps (no lag on a falling curve); the window shrinks at the ends."""
    half = len(values) // 50
    return [sum(values[max(0, i - half) : i + half + 1]) / len(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]


def plot_loss(curves: dict[str, list[float]], path: Path, *, title: str, zoom: bool = False) -> None:
    """Raw losses (faint) and their moving mean; `zoom` cuts the first 5% of the steps off the y range."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    lowest, early = math.inf, -math.inf
    for index, (label, losses) in enumerate(curves.items()):
        steps = range(1, len(losses) + 1)
        color = f"C{index}"
        ax.plot(steps, losses, color=color, alpha=0.25, linewidth=0.8)
        ax.plot(steps, smooth(losses), color=color, linewidth=1.8, label=label)
        lowest, early = min(lowest, min(losses)), max(early, losses[min(len(losses) - 1, len(losses) // 20)])
    if zoom and early > lowest:
        ax.set_ylim(lowest - 0.05 * (early - lowest), early)  # the start (ln 256 = 5.5) would flatten the rest
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats per byte)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(title="per step (faint) and moving mean" if any(len(losses) >= 50 for losses in curves.values()) else None)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_expert_load(records: list[dict[str, Any]], path: Path, *, title: str) -> None:
    """One panel per MoE layer: each routed expert's share of the assignments, per step."""
    plt = pyplot()
    panels = len(records[0]["tokens_per_expert"])
    fig, axes = plt.subplots(panels, 1, figsize=(7, 1.2 + 2.4 * panels), sharex=True, squeeze=False, layout="constrained")
    steps = [entry["step"] for entry in records]
    for index, ax in enumerate(axes[:, 0]):
        counts = [entry["tokens_per_expert"][index] for entry in records]
        experts = len(counts[0])
        colors = plt.get_cmap("tab10" if experts <= 10 else "viridis")
        for expert in range(experts):
            share = smooth([100 * row[expert] / sum(row) for row in counts])
            ax.plot(steps, share, linewidth=1.2, color=colors(expert if experts <= 10 else expert / (experts - 1)), label=f"expert {expert}")
        ax.axhline(100 / experts, color="black", linestyle="--", linewidth=1, label="balanced")
        last = records[-1]["max_over_mean_load"][index]
        ax.set_title(f"MoE layer {index} (block {index}): last step max/mean load {last:.2f}", fontsize=10)
        ax.set_ylabel("share of assignments (%)" if len(records) < 50 else f"share (%), mean of {2 * (len(records) // 50) + 1} steps")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("step")
    if len(records[0]["tokens_per_expert"][0]) <= 16:
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside right center", fontsize=8)
    fig.suptitle(f"Expert load: {title}", fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------- main
def summary_table(title: str, summaries: list[dict[str, Any]]) -> Table:
    table = Table(title=title)
    for column in ("run", "params", "active", "loss 1-10", "last 10", "held-out", "max/mean", "tokens/s"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for summary in summaries:
        load = summary["final_max_over_mean_load"]
        table.add_row(
            summary["label"], f"{summary['parameters'] / 1e6:.2f}M", f"{summary['active_parameters_per_token'] / 1e6:.2f}M",
            f"{summary['loss_first_10']:.3f}", f"{summary['loss_last_10']:.3f}", f"{summary['eval_loss']:.3f}",
            " ".join(f"{value:.2f}" for value in load) or "-", f"{summary['tokens_per_second'] / 1e3:.1f}k",
        )
    for summary in summaries:
        table.caption = (table.caption + "\n" if table.caption else "") + f"{summary['label']}: {summary['mlp']}"
    return table


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example: python examples/train_moe_lm.py --seed 0 --steps 40 --out runs/moe")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help=f"YAML with model: (its MLP at {MLP_KEY}) and train:")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps (default 40)")
    parser.add_argument("--out", type=Path, default=Path("runs/train_moe_lm"), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="seeds the weights and the batches (default 0)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: on matrices this small a second thread gains little on an idle machine "
                             "and, measured on 2 busy cores, made the 40 steps five times slower)")
    parser.add_argument("--eval-batches", type=int, default=8, help="held-out batches for the final evaluation loss (default 8)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override a field of the MLP config, relative to {MLP_KEY} (repeatable), e.g. --set experts=16")
    parser.add_argument("--compare", action="store_true",
                        help="train a dense MLP of equal active FLOPs, MoE with aux_loss and MoE with aux_free routing")
    args = parser.parse_args(argv)
    if min(args.steps, args.eval_batches, args.threads) < 1:
        parser.error("--steps, --eval-batches and --threads must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import torch
    except ImportError:
        raise SystemExit(f"this example needs torch and matplotlib: {INSTALL_HINT}") from None
    torch.set_num_threads(args.threads)
    pyplot()  # fail before training, not after
    try:  # the loader first: it reports a malformed file with its line and column
        mlp = load_config(args.config, key=MLP_KEY, overrides=args.overrides)
        variants = compare_variants(mlp) if args.compare else {"run": mlp}
    except ConfigError as error:
        print(error, file=sys.stderr)
        return 1
    settings = read_settings(args.config)

    summaries = []
    for name, config in variants.items():
        out = args.out / name if args.compare else args.out
        summaries.append(train(settings, config, args.steps, args.seed, out, label=name, eval_batches=args.eval_batches))
    console.print(summary_table(f"{args.steps} steps, seed {args.seed}, {args.config.name}", summaries))
    if args.compare:
        curves = {f"{summary['label']}: {summary['mlp']}": json.loads((args.out / name / "metrics.json").read_text())["steps"]
                  for name, summary in zip(variants, summaries)}
        plot_loss({label: [entry["loss"] for entry in steps] for label, steps in curves.items()}, args.out / "compare_loss.png",
                  title=f"Same model, three MLPs: {settings.layers} blocks, hidden {settings.hidden_size}, seed {args.seed}", zoom=True)
        (args.out / "compare.json").write_text(json.dumps({"steps": args.steps, "seed": args.seed, "runs": summaries}, indent=1) + "\n")
        console.print(f"wrote {args.out}/compare_loss.png, {args.out}/compare.json and one folder per run")
    else:
        files = ["metrics.json", "loss.png"] + (["expert_load.png"] if moe_count(summaries[0]) else [])
        console.print(f"wrote {', '.join(str(args.out / name) for name in files)}")
    return 0


def moe_count(summary: dict[str, Any]) -> int:
    return len(summary["final_max_over_mean_load"])


if __name__ == "__main__":
    sys.exit(main())
