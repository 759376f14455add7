"""What the Triton kernels share: whether they run under Triton's interpreter, and their autotune configs.

`TRITON_INTERPRET=1` is read by Triton when a kernel is decorated, i.e. when this package's kernel
modules are imported: `INTERPRETED` records the value they were decorated with. Under the
interpreter the kernels run on CPU tensors (slowly: for tests) with one autotune config each
(the interpreter fails with several); on a GPU each kernel autotunes over at most 4 configs.
"""

from __future__ import annotations

import contextlib

import torch
import triton

INTERPRETED: bool = triton.knobs.runtime.interpret


# The kernels avoid the functions of triton.language that are themselves `@triton.jit` (tl.sum, tl.cumsum, tl.zeros,
# tl.sigmoid...): they are decorated when triton is imported, which may be before TRITON_INTERPRET is set
# (torch._dynamo imports triton), and the interpreter cannot call them then. They write
# `tl.reduce(x, axis, add)` for tl.sum (and tl.associative_scan for tl.cumsum), with `add` decorated here, after
# TRITON_INTERPRET is read (triton.language's own combine function is private API).
# (Calls of this package's own jit functions cost the interpreter about a millisecond each, so the kernels make few.)


@triton.jit
def add(a, b):
    """The combine function of tl.reduce and tl.associative_scan for sums."""
    return a + b


def autotune_configs(gpu: list[triton.Config], interpreted: triton.Config) -> list[triton.Config]:
    """The configs a kernel autotunes over: `gpu` (at most 4), or the one `interpreted` config under the interpreter."""
    if len(gpu) > 4:
        raise ValueError(f"at most 4 autotune configs per kernel (a GPU benchmark must compile in minutes), got {len(gpu)}")
    return [interpreted] if INTERPRETED else gpu


def dot_precision(dtype: torch.dtype) -> str:
    """tl.dot's input_precision: "ieee" for float32 and float64 (Triton's default TF32 would change float32 results,
    which an expert-tier setting must not); for 16-bit inputs the precision has no effect (Triton's default)."""
    return "ieee" if dtype in (torch.float32, torch.float64) else "tf32"


def on_device(tensor: torch.Tensor):
    """A context that makes `tensor`'s CUDA device the current one (Triton launches on the current device)."""
    return torch.cuda.device(tensor.device) if tensor.is_cuda else contextlib.nullcontext()


def check_device(tensor: torch.Tensor) -> None:
    """A CPU tensor runs only under the interpreter: say so, naming the field that chose Triton."""
    if not tensor.is_cuda and not INTERPRETED:
        raise RuntimeError(
            f"dropless_kernel: triton runs on CUDA tensors; this input is on {tensor.device}, where the Triton kernels run "
            "only under Triton's interpreter (set TRITON_INTERPRET=1 in the environment before the first Triton-kernel "
            "forward: slow, for tests); on a CPU use dropless_kernel: auto or torch"
        )


def block_experts(experts: int) -> int:
    """BLOCK_E: the power of two that holds `experts` (the in-kernel block table reads every expert's end; tl.arange needs a power of two)."""
    return triton.next_power_of_2(max(experts, 1))


__all__ = ["INTERPRETED", "add", "autotune_configs", "block_experts", "check_device", "dot_precision", "on_device"]
