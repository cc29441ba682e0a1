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
from torch import nn

from src.models.config import SDMoEConfig
from src.models.gradient_projection import GradientProjection
from src.utils.sharding import full


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


class SpectralDecoupler(GradientProjection):
    """Trainer extension: decouples expert gradients (before the step) and, with `exact_update`, updates (after
    it). The subspace bases are state: a resumed run continues with the ones in use, not fresh ones."""

    def __init__(self, cfg: SDMoEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.exact_update = cfg.exact_update
        self.bases: dict[str, torch.Tensor] = {}
        self.window_s, self.window_steps, self.total_s = 0.0, 0, 0.0

    def is_active(self) -> bool:
        return self.cfg.rank > 0

    def project(self, key: str, delta: torch.Tensor) -> torch.Tensor:
        return decouple(delta, self.bases[key].to(delta.device, delta.dtype))

    @torch.no_grad()
    def after_backward(self, model: nn.Module, step: int) -> None:
        """Recompute the bases every `period` steps (from the whole weights), then decouple the gradients."""
        if not self.is_active():
            return
        t0 = time.perf_counter()
        for key, p in self.targets(model):
            if key not in self.bases or step % self.cfg.period == 0:
                self.bases[key] = top_input_subspace(full(p), self.cfg.rank)
        super().after_backward(model, step)
        self._time(t0, count=False)

    @torch.no_grad()
    def after_step(self, model: nn.Module, step: int) -> None:
        if not self.is_active():
            return
        t0 = time.perf_counter()
        super().after_step(model, step)
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
        if not self.is_active() or not self.window_steps:
            return {}
        ms = 1000 * self.window_s / self.window_steps
        self.window_s, self.window_steps = 0.0, 0
        return {"sd_moe/overhead_ms": ms}
