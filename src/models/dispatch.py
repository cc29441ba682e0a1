"""Token -> expert dispatch: sort the (token, expert) assignments by expert, run each expert on its
contiguous slice, and scatter-add the outputs back weighted by the router."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def expert_forward(x: torch.Tensor, weights: torch.Tensor, idx: torch.Tensor, bank) -> torch.Tensor:
    """x (N, D), weights/idx (N, k) -> (N, D) = sum_k weights[:, k] * expert_{idx[:, k]}(x)."""
    n, k = idx.shape
    flat = idx.reshape(-1)
    order = flat.argsort(stable=True)
    token = order // k
    counts = torch.bincount(flat, minlength=bank.num_experts).tolist()
    xs = x.index_select(0, token)
    w1, w2 = bank.weight("w1"), bank.weight("w2")
    outs = []
    start = 0
    for e, c in enumerate(counts):
        if c:
            h = F.gelu(F.linear(xs[start : start + c], w1[e], bank.b1[e]))
            outs.append(F.linear(h, w2[e], bank.b2[e]))
        start += c
    ys = torch.cat(outs) if outs else xs.new_zeros(0, x.shape[1])
    ys = ys * weights.reshape(-1)[order].unsqueeze(-1)
    return torch.zeros_like(x).index_add_(0, token, ys)
