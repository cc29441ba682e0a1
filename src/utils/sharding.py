"""Whole tensors behind FSDP shards: what model code needs to read or write a sharded weight as a whole.

Below models and training (both use it), so that model-side extensions (SPRI's residual spectrum, SD-MoE)
need not import the training package.
"""

from __future__ import annotations

import torch


def full(t: torch.Tensor) -> torch.Tensor:
    """The whole tensor behind an FSDP shard (a collective: every process must call it); plain tensors as is."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t


@torch.no_grad()
def assign_full(dst: torch.Tensor, value: torch.Tensor) -> None:
    """Write a whole tensor into `dst`, or into this process's shard of it when `dst` is sharded."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if isinstance(dst, DTensor):
        dst.to_local().copy_(distribute_tensor(value, dst.device_mesh, dst.placements).to_local())
    else:
        dst.copy_(value)
