"""The mixture-of-experts layer, as named steps:

    route      router.py (one pure function per routing type), losses.py (losses, statistics)
    permute    permute.py: rows sorted by expert, a `PermutePlan`
    experts    experts.py: `GroupedExperts(x, plan)` (grouped_gemm.py: the one wrapper of torch._grouped_mm)
    unpermute  permute.py: rows back to tokens
    layer.py   `MoEMLP`, which chains them, adds the shared experts and the norms

Shape legend, used in every local's suffix:
    T  tokens (the rows of the flattened input, masked ones included)
    H  hidden size
    I  expert intermediate size; a gated layer_1 has 2I rows (gate first, then up)
    E  routed experts (experts - shared_experts); the expert id E itself is the sentinel
       of a masked token or a dropped assignment
    K  experts per token (top-k)
    N  routed rows, N = T·K (a static shape; sentinel rows sort last)
    S  sequences (the batch rows of a [batch, seq, hidden] input)
    M  the rows of one expert
"""

from fastmoe_cfg.layers.moe.experts import GroupedExperts, LoopedExperts
from fastmoe_cfg.layers.moe.layer import MoEMLP, Routing
from fastmoe_cfg.layers.moe.permute import PermutePlan, permute, unpermute

__all__ = ["GroupedExperts", "LoopedExperts", "MoEMLP", "PermutePlan", "Routing", "permute", "unpermute"]
