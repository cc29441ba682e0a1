"""Spectral-decoupled experts (SD-MoE, Huang et al. 2026) as a trainer extension (`moe.sd_moe`).

Each MoE layer's expert matrices W_e (out, in) share a common top-r input subspace V (in, r): the
top right singular vectors of all experts stacked, recomputed every `period` optimizer steps from
the effective weights. A weight splits into its shared component W_e V V^T and its tail
W_e (I - V V^T); gradients split the same way, and the shared part gets one update for all experts
(the mean of the experts' projected gradients) while each tail keeps its own:

    G_e' = mean_j(G_j) V V^T + G_e (I - V V^T)

AdamW rescales every coordinate, which would mix the parts again, so with `exact_update` the
optimizer's actual change of the weights is decoupled the same way after the step. Choices the
paper leaves open (ours, as knobs): the subspace is on the input side of each matrix; the existing
in-subspace differences between experts are kept, not averaged, when the subspace is recomputed
(averaging would change the function). Rank 0 is ordinary training.
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist

from src.models.config import SDMoEConfig
from src.models.whisper_moe import moe_blocks
from src.utils.extension import TrainerExtension
from src.utils.sharding import assign_full, full


def top_input_subspace(weights: torch.Tensor, rank: int) -> torch.Tensor:
    """(in, r) orthonormal top right singular vectors of the experts stacked along their outputs.

    Exact and deterministic (eigenvectors of the in x in Gram matrix in float64), not randomized: every
    process must get the same basis, and a randomized SVD misses flat-spectrum subspaces. Under DDP
    rank 0's basis is broadcast, so the processes cannot drift apart.
    """
    m = weights.detach().double().reshape(-1, weights.shape[-1])
    r = min(rank, *m.shape)
    _, vecs = torch.linalg.eigh(m.t() @ m)  # ascending eigenvalues
    v = vecs[:, -r:].flip(1).to(weights.dtype).contiguous() if r else vecs[:, :0].to(weights.dtype)
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast(v, src=0)
    return v


def decouple(delta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(E, out, in) -> the same with its in-subspace part replaced by the experts' mean."""
    proj = (delta @ v) @ v.t()
    return delta - proj + proj.mean(0, keepdim=True)


class SpectralDecoupler(TrainerExtension):
    """Trainer extension: decouples expert gradients (before the step) and updates (after it). The
    subspace bases are state: a resumed run continues with the ones in use, not fresh ones."""

    def __init__(self, cfg: SDMoEConfig) -> None:
        self.cfg = cfg
        self.bases: dict[str, torch.Tensor] = {}
        self.before: dict[str, torch.Tensor] = {}
        self.window_s, self.window_steps, self.total_s = 0.0, 0, 0.0

    @staticmethod
    def targets(model) -> list[tuple[str, torch.Tensor, list[tuple[str, torch.nn.Parameter]]]]:
        """(key, effective (E, out, in) weight, the per-expert stacked parameters behind it) per matrix."""
        out = []
        for layer_name, moe in moe_blocks(model):
            bank = moe.experts
            for w in ("w1", "w2"):
                params = [(f"{layer_name}.{w}", getattr(bank, w))]
                params = [(k, p) for k, p in params if p.requires_grad]
                if params:
                    out.append((f"{layer_name}.{w}", bank.weight(w, fetch=full), params))
        return out

    @torch.no_grad()
    def after_backward(self, model, step: int) -> None:
        if self.cfg.rank <= 0:
            return
        t0 = time.perf_counter()
        for key, weight, params in self.targets(model):
            if key not in self.bases or step % self.cfg.period == 0:
                self.bases[key] = top_input_subspace(weight, self.cfg.rank)
            v = self.bases[key].to(weight.device, weight.dtype)
            for name, p in params:
                if p.grad is not None:  # under FSDP on whole tensors: the mean runs over all experts
                    assign_full(p.grad, decouple(full(p.grad), v.to(p.grad.dtype)))
                if self.cfg.exact_update:
                    self.before[name] = p.detach().clone()  # this process's shard only
        self._time(t0, count=False)

    @torch.no_grad()
    def after_step(self, model, step: int) -> None:
        if self.cfg.rank <= 0:
            return
        t0 = time.perf_counter()
        if self.cfg.exact_update:
            for key, weight, params in self.targets(model):
                v = self.bases[key].to(weight.device)
                for name, p in params:
                    old = self.before.pop(name, None)
                    if old is not None:
                        old = full(old)
                        assign_full(p, old + decouple(full(p) - old, v.to(p.dtype)))
        self._time(t0, count=True)

    def _time(self, t0: float, count: bool) -> None:
        dt = time.perf_counter() - t0
        self.window_s += dt
        self.total_s += dt
        self.window_steps += int(count)

    def state_dict(self) -> dict:
        return {"bases": {k: v.detach().cpu() for k, v in self.bases.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.bases = dict(state.get("bases", {}))

    def metrics(self, model) -> dict[str, float]:
        """Milliseconds per optimizer step spent decoupling, since the last call."""
        if self.cfg.rank <= 0 or not self.window_steps:
            return {}
        ms = 1000 * self.window_s / self.window_steps
        self.window_s, self.window_steps = 0.0, 0
        return {"sd_moe/overhead_ms": ms}
