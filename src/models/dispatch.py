"""Token -> expert dispatch, one path: sort the (token, expert) assignments by expert, run all
experts as grouped matmuls over the contiguous slices, and scatter-add the outputs back weighted by
the router.

The grouped matmul is `torch._grouped_mm` (bf16 kernels on Hopper GPUs, a correct implementation on
CPU and other devices in torch >= 2.9): the group offsets stay on the device, so there is no
host-device synchronisation at all. Where it is missing (older torch) or cannot take the shapes, a
per-expert loop is the fallback, with one synchronisation per layer (the group sizes), never one
per expert.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_GROUPED = hasattr(torch, "_grouped_mm")


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands on a contiguous gradient (the CPU grouped-mm backward rejects
    expanded ones, e.g. from `.sum()`)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a matmul on ``x`` runs in here: autocast's when it is on, else x's."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def use_grouped_mm(x: torch.Tensor, w: torch.Tensor) -> bool:
    """Whether the grouped kernel runs these operands: on CPU always (compiled: in bf16 only); on CUDA in
    bf16 on sm90+ with 16-byte aligned rows (fp32 CUDA training keeps exact fp32 matmuls through the loop)."""
    if not _GROUPED:
        return False
    if torch.compiler.is_compiling() and compute_dtype(x) != torch.bfloat16:
        return False  # torch.compile's shape function for the grouped kernel accepts bf16 only
    if x.is_cuda:
        return (compute_dtype(x) == torch.bfloat16 and torch.cuda.get_device_capability(x.device) >= (9, 0)
                and x.shape[-1] % 8 == 0 and w.shape[-2] % 8 == 0)
    return x.device.type == "cpu"


def grouped_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, offsets: torch.Tensor,
                   expert: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` (T, in), sorted by expert, times their expert's w (E, out, in) plus b (E, out);
    ``offsets`` (E,) int32 are the cumulative group ends and ``expert`` (T,) the expert of each row."""
    dtype = compute_dtype(x)
    y = torch._grouped_mm(x.to(dtype), w.to(dtype).transpose(-2, -1), offs=offsets)
    return _ContiguousGrad.apply(y) + b.to(y.dtype).index_select(0, expert)


def looped_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """The same as grouped_linear, one matmul per expert over its ``sizes`` rows (group sizes on the host)."""
    # unbind, not w[e]: indexing would give every expert's backward a zero-filled copy of the whole stack
    ws, bs = w.unbind(0), b.unbind(0)
    outs, start = [], 0
    for e, n in enumerate(sizes):
        if n:
            outs.append(F.linear(x[start : start + n], ws[e], bs[e]))
        start += n
    return torch.cat(outs) if outs else x.new_zeros(0, w.shape[1])


@torch.compiler.disable  # traced, every new pattern of group sizes would be a recompilation
def looped_ffn(xs: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
               counts: torch.Tensor) -> torch.Tensor:
    """Both expert matmuls by the per-expert loop, with one host synchronisation (the group sizes)."""
    sizes = counts.tolist()
    return looped_linear(F.gelu(looped_linear(xs, w1, b1, sizes)), w2, b2, sizes)


def expert_forward(x: torch.Tensor, weights: torch.Tensor, idx: torch.Tensor, bank) -> torch.Tensor:
    """x (N, D), weights/idx (N, k) -> (N, D) = sum_k weights[:, k] * expert_{idx[:, k]}(x)."""
    n, k = idx.shape
    flat = idx.reshape(-1)
    order = flat.argsort(stable=True)
    token = order // k
    expert = flat.index_select(0, order)
    counts = torch.bincount(flat, minlength=bank.num_experts)
    w1, w2 = bank.weight("w1"), bank.weight("w2")
    xs = x.index_select(0, token)
    if use_grouped_mm(x, w1):  # one decision per call (w1's shape covers both matmuls' dims)
        offsets = counts.cumsum(0).to(torch.int32)
        ys = grouped_linear(F.gelu(grouped_linear(xs, w1, bank.b1, offsets, expert)), w2, bank.b2, offsets, expert)
    else:
        ys = looped_ffn(xs, w1, bank.b1, w2, bank.b2, counts)
    ys = ys * weights.reshape(-1)[order].unsqueeze(-1).to(ys.dtype)
    return torch.zeros(x.shape, dtype=ys.dtype, device=x.device).index_add_(0, token, ys).to(x.dtype)
