"""Token -> expert dispatch, one path: sort the (token, expert) assignments by expert, run every
expert's FFN over its contiguous slice, and scatter-add the outputs back weighted by the router.

The expert matmuls run either as `torch._grouped_mm` (bf16 kernels on Hopper GPUs): the group offsets
stay on the device, so there is no host-device synchronisation at all; or as a per-expert loop with
bias-fused addmm and one synchronisation per layer (the group sizes), never one per expert. `moe.dispatch`
picks: `auto` takes the kernel on CUDA bf16 sm90+ and the loop elsewhere (on CPU the loop is the faster).
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


def use_grouped_mm(x: torch.Tensor, w: torch.Tensor, mode: str = "auto") -> bool:
    """Whether the grouped kernel runs these operands. `auto`: on CUDA in bf16 on sm90+ with 16-byte aligned
    rows (fp32 CUDA training keeps exact fp32 matmuls through the loop); on CPU the loop, whose bias-fused
    addmm measured 1.15x faster than the grouped kernel's CPU implementation (docs/benchmarks.md).
    `grouped` forces the kernel wherever it exists; `loop` never uses it. Compiled, the kernel is traced
    in bf16 only (its shape function rejects other dtypes)."""
    if mode == "loop" or not _GROUPED:
        return False
    if torch.compiler.is_compiling() and compute_dtype(x) != torch.bfloat16:
        return False
    if mode == "grouped":
        return True
    return (x.is_cuda and compute_dtype(x) == torch.bfloat16 and torch.cuda.get_device_capability(x.device) >= (9, 0)
            and x.shape[-1] % 8 == 0 and w.shape[-2] % 8 == 0)


def grouped_linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, offsets: torch.Tensor,
                   expert: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` (T, in), sorted by expert, times their expert's w (E, out, in) plus b (E, out);
    ``offsets`` (E,) int32 are the cumulative group ends and ``expert`` (T,) the expert of each row."""
    dtype = compute_dtype(x)
    y = torch._grouped_mm(x.to(dtype), w.to(dtype).transpose(-2, -1), offs=offsets)
    return _ContiguousGrad.apply(y) + b.to(y.dtype).index_select(0, expert)


class _LoopedFFN(torch.autograd.Function):
    """Each expert's FFN (fc1 -> GELU -> fc2, biases fused into addmm) on its slice of the sorted rows.

    Written out, not left to autograd, so the backward writes each expert's weight gradient straight into
    one (E, out, in) buffer: autograd through `unbind` would stack E separate gradients (a copy of every
    expert matrix per step) and keep the GELU output alive as well. Runs in the compute dtype (autocast's,
    when on) and returns gradients in the inputs' dtypes.
    """

    @staticmethod
    def forward(ctx, xs, w1, b1, w2, b2, sizes: list[int]):
        dtype = compute_dtype(xs)
        ctx.dtypes = (xs.dtype, w1.dtype, b1.dtype, w2.dtype, b2.dtype)
        xs, w1, b1, w2, b2 = (t.to(dtype) for t in (xs, w1, b1, w2, b2))
        pre, outs = [], []
        with torch.autocast(xs.device.type, enabled=False):
            for e, xe in enumerate(xs.split(sizes)):
                if sizes[e]:
                    pre.append(torch.addmm(b1[e], xe, w1[e].t()))
                    outs.append(torch.addmm(b2[e], F.gelu(pre[-1]), w2[e].t()))
        ctx.sizes = sizes
        ctx.save_for_backward(xs, w1, w2, *pre)
        return torch.cat(outs) if outs else xs.new_zeros(0, w2.shape[1])

    @staticmethod
    def backward(ctx, gy):
        xs, w1, w2, *pre = ctx.saved_tensors
        need = ctx.needs_input_grad
        gy = gy.to(xs.dtype)
        gx = torch.empty_like(xs)
        gw1, gw2 = torch.empty_like(w1), torch.empty_like(w2)  # every slice is written below
        gb1, gb2 = w1.new_empty(w1.shape[:2]), w2.new_empty(w2.shape[:2])
        acts = iter(pre)
        with torch.autocast(xs.device.type, enabled=False):
            for e, (xe, ge, gxe) in enumerate(zip(xs.split(ctx.sizes), gy.split(ctx.sizes), gx.split(ctx.sizes))):
                if not ctx.sizes[e]:  # an idle expert: zero gradient
                    for g in (gw1, gb1, gw2, gb2):
                        g[e].zero_()
                    continue
                a = next(acts)
                if need[3]:
                    torch.mm(ge.t(), F.gelu(a), out=gw2[e])
                if need[4]:
                    torch.sum(ge, 0, out=gb2[e])
                ga = torch.ops.aten.gelu_backward(ge @ w2[e], a)
                if need[1]:
                    torch.mm(ga.t(), xe, out=gw1[e])
                if need[2]:
                    torch.sum(ga, 0, out=gb1[e])
                torch.mm(ga, w1[e], out=gxe)
        grads = (gx, gw1, gb1, gw2, gb2)
        return *(g.to(dt) if n else None for g, dt, n in zip(grads, ctx.dtypes, need)), None


@torch.compiler.disable  # traced, every new pattern of group sizes would be a recompilation
def looped_ffn(xs: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor,
               counts: torch.Tensor) -> torch.Tensor:
    """The per-expert loop: one host synchronisation per call (the group sizes), then _LoopedFFN."""
    return _LoopedFFN.apply(xs, w1, b1, w2, b2, counts.tolist())


def expert_forward(x: torch.Tensor, weights: torch.Tensor, idx: torch.Tensor, bank, mode: str = "auto",
                   keep: torch.Tensor | None = None) -> torch.Tensor:
    """x (N, D), weights/idx (N, k) -> (N, D) = sum_k weights[:, k] * expert_{idx[:, k]}(x), over the
    assignments in ``keep`` (N, k) bool only (None: all): a dropped assignment costs no expert compute."""
    n, k = idx.shape
    flat = idx.reshape(-1)
    if keep is None:
        order = flat.argsort(stable=True)
    else:  # the kept assignments, by expert (positions into the flat (N * k) assignments)
        kept = keep.reshape(-1).nonzero().squeeze(1)
        order = kept.index_select(0, flat.index_select(0, kept).argsort(stable=True))
        flat = flat.index_select(0, kept)
    token = order // k
    expert = idx.reshape(-1).index_select(0, order)
    counts = torch.bincount(flat, minlength=bank.num_experts)
    w1, w2 = bank.weight("w1"), bank.weight("w2")
    xs = x.index_select(0, token)
    if use_grouped_mm(x, w1, mode):  # one decision per call (w1's shape covers both matmuls' dims)
        offsets = counts.cumsum(0).to(torch.int32)
        ys = grouped_linear(F.gelu(grouped_linear(xs, w1, bank.b1, offsets, expert)), w2, bank.b2, offsets, expert)
    else:
        ys = looped_ffn(xs, w1, bank.b1, w2, bank.b2, counts)
    ys = ys * weights.reshape(-1)[order].unsqueeze(-1).to(ys.dtype)
    return torch.zeros(x.shape, dtype=ys.dtype, device=x.device).index_add_(0, token, ys).to(x.dtype)
