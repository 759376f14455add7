"""Triton kernels of the dropless experts (`dropless_kernel`; the `[triton]` extra), each beside its pure-torch reference.

    gather_gemm.py   the gather-GEMM: rows sorted by expert, input rows read by index inside the tile, bias and
                     activation in the epilogue, output grouped or scattered; its block table (`row_block`)
    grouped_xty.py   the grouped XᵀY: weight and bias gradients per expert
    activation.py    the activations of the schema, forward (the epilogue) and backward (a kernel)
    tuning.py        the interpreter flag, the autotune configs (at most 4 per kernel; one under the interpreter)
    ops.py           the torch custom ops over them (`fastmoe_cfg::expert_linear`, ...), used by `GroupedExperts`

Importing this package or `ops` never imports triton: the kernel modules are imported at the first
call of an op. The choice of kernels (`select_kernels`) is made when the layer is built.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass

import torch

from fastmoe_cfg.schemas.enums import DroplessKernel

# The dtypes auto runs in Triton: float64 (gradient checks) stays on the torch path; dropless_kernel: triton runs it too.
TRITON_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def triton_version() -> str | None:
    """The installed triton's version, or None when it is not importable (triton itself is not imported)."""
    if importlib.util.find_spec("triton") is None:
        return None
    try:
        return importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class KernelChoice:
    """Which kernels `GroupedExperts` runs, and why (`reason`: the line the layer logs when it is built).

    Attributes:
        triton: run the Triton kernels (dropless_kernel triton, or auto with triton installed).
        cuda_only: only for CUDA inputs of the TRITON_DTYPES (auto); other inputs run the torch kernels.
        reason: which kernels, and why.
    """

    triton: bool
    cuda_only: bool
    reason: str

    def uses_triton(self, x: torch.Tensor) -> bool:
        """Whether the Triton kernels run on `x` (a static choice under torch.compile: device and dtype only)."""
        return self.triton and (not self.cuda_only or (x.is_cuda and x.dtype in TRITON_DTYPES))


TORCH_KERNELS = KernelChoice(triton=False, cuda_only=False, reason="torch kernels")


def select_kernels(setting: DroplessKernel) -> KernelChoice:
    """The kernels of a dropless layer from `dropless_kernel`.

    auto: Triton for CUDA inputs in float32/bfloat16/float16 when triton is installed, else torch;
    torch: torch always; triton: Triton always (on CPU tensors only under TRITON_INTERPRET=1, checked
    at the first forward), an error now when triton is not installed.
    """
    version = triton_version()
    if setting == DroplessKernel.torch:
        return KernelChoice(False, False, "torch kernels (dropless_kernel: torch)")
    if setting == DroplessKernel.triton:
        if version is None:
            raise ModuleNotFoundError(
                "dropless_kernel: triton needs the triton package, which is not installed: pip install 'fastmoe_cfg[triton]' "
                "(or use dropless_kernel: auto, which falls back to the torch kernels)",
                name="triton",
            )
        interpreted = " (TRITON_INTERPRET=1: CPU tensors run in Triton's interpreter)" if os.environ.get("TRITON_INTERPRET") == "1" else ""
        return KernelChoice(True, False, f"Triton kernels (dropless_kernel: triton; triton {version}){interpreted}")
    if version is None:
        return KernelChoice(False, False, "torch kernels (dropless_kernel: auto; triton is not installed: pip install 'fastmoe_cfg[triton]')")
    return KernelChoice(
        True, True, f"Triton kernels for CUDA inputs in float32/bfloat16/float16, torch kernels otherwise (dropless_kernel: auto; triton {version})"
    )


__all__ = ["TORCH_KERNELS", "TRITON_DTYPES", "KernelChoice", "select_kernels", "triton_version"]
