"""`upcycle=spri` (SVD-Partitioned Residual Initialization, Shan et al. 2026).

For each of W1 and W2: W = sum_i s_i u_i v_i^T. The top components form the principal part P
(`rank`, or the smallest rank keeping `energy` of sum s_i^2); the remaining components are
partitioned across the E experts (R_e), and expert e starts as W_e = P + residual_scale * R_e, stored
as one plain tensor like every other strategy's experts (so a learning rate means the same thing for
all of them). With residual_scale 1, P + sum_e R_e = W.

Stage 1 trains "only the residual spectrum and the routers": the update of every expert weight is kept
orthogonal to P's left and right singular subspaces, dW_e = (I - U_r U_r^T) dW (I - V_r V_r^T), exactly
under AdamW (`ResidualSpectrum` projects the gradient before the step and the optimizer's actual update
after it). `stage1_update` chooses the variant: projected (both sides, default), left, right, or full
(no restriction: vanilla's stage 1 with frozen biases). Stage 2 trains everything, unrestricted.

`energy: auto` picks the smallest energy whose upcycled model stays within a disruption budget of the
dense one on the calibration batches (bisection in src/models/upcycling/apply.py; by default the mean
KL divergence of the teacher-forced next-token distributions, `upcycle.max_init_kl`): pretrained spectra
are flat (tiny.en keeps 214 of 384 directions at energy 0.9), so a fixed energy tuned on one model
disrupts another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from src.models.gradient_projection import GradientProjection, expert_matrices
from src.models.moe import MoEBlock
from src.models.upcycling.base import Calibration, Strategy, copy_dense, init_router, register_strategy
from src.models.upcycling.config import PARTITIONS, SPRIConfig
from src.utils.errors import UserError
from src.utils.extension import TrainerExtension
from src.utils.sharding import full

log = logging.getLogger(__name__)


def principal_rank(s: torch.Tensor, rank: int | None, energy: float | None) -> int:
    if rank is not None:
        if not 0 <= rank <= s.numel():
            raise UserError(f"upcycle.rank={rank} is outside [0, {s.numel()}]")
        return int(rank)
    if energy is None or not 0.0 <= energy <= 1.0:
        raise UserError("upcycle: set upcycle.rank, or upcycle.energy in [0, 1]")
    if energy == 0.0:
        return 0
    cum = (s.double() ** 2).cumsum(0) / (s.double() ** 2).sum()
    return int(torch.searchsorted(cum, torch.tensor(energy, dtype=cum.dtype) - 1e-12).item()) + 1


def partition_components(first: int, total: int, num_experts: int, how: str, gen: torch.Generator) -> list[list[int]]:
    """Residual component indices first..total-1 split across experts (disjoint and covering).

    `interleaved` and `random` are stable in the rank: component c belongs to the same expert whatever
    ``first`` is (interleaved: c mod E; random: a seeded permutation of all components, dealt round-robin),
    so a larger rank only moves components from one expert's residual into P, every expert gets weakly
    closer to the dense FFN, and `energy: auto`'s bisection searches a measure that moves one way.
    `contiguous` (E bands of the residual range) re-deals the bands when the rank changes.
    """
    if how == "interleaved":
        return [[c for c in range(first, total) if c % num_experts == e] for e in range(num_experts)]
    if how == "random":
        owner = torch.empty(total, dtype=torch.long)
        owner[torch.randperm(total, generator=gen)] = torch.arange(total) % num_experts
        return [[c for c in range(first, total) if owner[c] == e] for e in range(num_experts)]
    if how == "contiguous":
        comps = list(range(first, total))
        bounds = torch.linspace(0, len(comps), num_experts + 1).round().long().tolist()
        return [comps[bounds[e] : bounds[e + 1]] for e in range(num_experts)]
    raise UserError(f"upcycle.partition must be one of {PARTITIONS}, got '{how}'")


Spectrum = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # float64 thin SVD (u, s, vh)


def spri_split(svd: Spectrum, r: int, num_experts: int, partition: str, gen: torch.Generator):
    """(P, R (E, out, in), parts) from one matrix's SVD; float64 so P + sum R_e = W to fp32 precision."""
    u, s, vh = svd
    principal = (u[:, :r] * s[:r]) @ vh[:r]
    parts = partition_components(r, s.numel(), num_experts, partition, gen)
    residual = torch.stack([(u[:, p] * s[p]) @ vh[p] for p in parts])
    return principal, residual, parts


@dataclass
class LayerSpectra:
    """SPRI's fit of one layer: the float64 thin SVDs of its dense FFN's matrices, and their dtype (P's
    subspaces are handed to the stage-1 extension in it)."""

    svd: dict[str, Spectrum]  # "w1": fc1's, "w2": fc2's
    dtype: torch.dtype


def layer_spectra(fc1: nn.Linear, fc2: nn.Linear) -> LayerSpectra:
    return LayerSpectra({w: torch.linalg.svd(dense.detach().double(), full_matrices=False)
                         for w, dense in (("w1", fc1.weight), ("w2", fc2.weight))}, fc1.weight.dtype)


def chosen_rank(s: torch.Tensor, cfg: SPRIConfig) -> int:
    """P's rank at ``cfg`` (energy resolved: an `auto` energy is replaced by its value before the final init)."""
    return principal_rank(s, cfg.rank, None if cfg.energy == "auto" else float(cfg.energy))


Subspaces = dict[str, tuple[torch.Tensor, torch.Tensor]]  # "layer.w1": (U_r (out, r), V_r (in, r)), weights' dtype


def principal_subspaces(fit: dict[str, LayerSpectra], cfg: SPRIConfig) -> Subspaces:
    """P's left and right singular subspaces of every upcycled matrix, at the rank ``cfg`` chooses."""
    out = {}
    for layer, spectra in fit.items():
        for w, (u, s, vh) in spectra.svd.items():
            rank = chosen_rank(s, cfg)
            out[f"{layer}.{w}"] = (u[:, :rank].to(spectra.dtype).contiguous(),
                                   vh[:rank].t().to(spectra.dtype).contiguous())
    return out


@register_strategy
class SPRI(Strategy[SPRIConfig, LayerSpectra]):

    def auto_knob(self, cfg: SPRIConfig) -> str | None:
        return "energy" if cfg.rank is None and cfg.energy == "auto" else None

    def extensions(self, cfg: SPRIConfig, fit: dict[str, LayerSpectra]) -> list[TrainerExtension]:
        """Stage 1 moves the experts only in their residual spectrum (a no-op in stages that do not name it)."""
        return [ResidualSpectrum(cfg.stage1_update, principal_subspaces(fit, cfg))]

    def fit(self, calibration: Calibration, cfg: SPRIConfig) -> dict[str, LayerSpectra]:
        """Each layer's matrices' SVDs, once (energy=auto re-initialises the experts ~10 times); no data read."""
        return {name: layer_spectra(layer.fc1, layer.fc2) for name, layer in calibration.layers}

    @torch.no_grad()
    def init_experts(self, moe: MoEBlock, fc1: nn.Linear, fc2: nn.Linear, cfg: SPRIConfig, gen: torch.Generator,
                     state: LayerSpectra) -> dict:
        copy_dense(moe, fc1, fc2)
        init_router(moe, cfg.router_std, gen)
        bank = moe.experts
        err_num, err_den, ranks, full_rank = 0.0, 0.0, {}, []
        for name, dense in (("w1", fc1.weight), ("w2", fc2.weight)):
            s = state.svd[name][1]
            rank = chosen_rank(s, cfg)
            p, r, _ = spri_split(state.svd[name], rank, bank.num_experts, cfg.partition, gen)
            stored = (p + cfg.residual_scale * r).to(dense.dtype)
            getattr(bank, name).copy_(stored)
            # The stored experts give back W: P + sum_e (W_e - P) / residual_scale.
            rebuilt = p + (stored.double() - p).sum(0) / cfg.residual_scale
            err_num += float((rebuilt - dense.double()).pow(2).sum())
            err_den += float(dense.double().pow(2).sum())
            ranks[name] = rank
            if rank == s.numel():
                full_rank.append(name)
        out = {"reconstruction_error": (err_num / err_den) ** 0.5, "principal_rank": ranks}
        if full_rank:  # no residual: every expert is the dense matrix (vanilla), a stage 1 moves none of it
            out["warning"] = (f"rank = full ({', '.join(full_rank)}): no residual spectrum, the experts equal the "
                              f"dense FFN there (vanilla) and stage 1 trains only the routers in those matrices")
        return out


def project_residual(delta: torch.Tensor, u: torch.Tensor, v: torch.Tensor, mode: str) -> torch.Tensor:
    """(E, out, in) -> its part outside P's subspaces: (I - U U^T) delta (I - V V^T) for `projected`."""
    if mode in ("projected", "left"):
        delta = delta - u @ (u.t() @ delta)
    if mode in ("projected", "right"):
        delta = delta - (delta @ v) @ v.t()
    return delta


class ResidualSpectrum(GradientProjection):
    """Trainer extension: in stages whose `trainable` names `residual`, every SPRI expert weight moves only
    in the residual spectrum (gradient projected before the step, the optimizer's update after it).

    It owns P's subspaces, handed over by the upcycling (SPRI.extensions), and saves them with every checkpoint
    with the init residuals' norms."""

    def __init__(self, mode: str, subspaces: Subspaces) -> None:
        super().__init__()
        self.mode = mode
        self.subspaces = dict(subspaces)
        self.active = False
        # ||W_e - P|| per expert at the first stage's start: saved with every checkpoint (state_dict), since a
        # resumed run's weights are no longer the init's
        self.residual_norm: dict[str, torch.Tensor] = {}
        # the expert weights when the current stage began (a mid-stage resume sets them first, from the stage's
        # starting weights: the trainer replays stage_start, so a set entry is kept)
        self.stage_weights: dict[str, torch.Tensor] = {}

    def is_active(self) -> bool:
        return self.active

    def matrices(self, model: nn.Module, trainable_only: bool = True) -> list[tuple[str, nn.Parameter]]:
        """(layer.w1 / layer.w2, the expert weight) of every matrix with a principal subspace."""
        return [(key, p) for key, p in expert_matrices(model, trainable_only) if key in self.subspaces]

    def targets(self, model: nn.Module) -> list[tuple[str, nn.Parameter]]:
        return self.matrices(model)

    def project(self, key: str, delta: torch.Tensor) -> torch.Tensor:
        u, v = self.subspaces[key]
        return project_residual(delta, u.to(delta.device, delta.dtype), v.to(delta.device, delta.dtype), self.mode)

    def stage_start(self, model, stage) -> None:
        self.active = self.mode != "full" and "residual" in stage.trainable
        with torch.no_grad():
            for key, p in self.matrices(model, trainable_only=False):
                w = full(p).detach().float()
                u, v = (t.to(w.device) for t in self.subspaces[key])  # a restored state is on the CPU
                self.subspaces[key] = (u, v)
                if key not in self.residual_norm:  # the residual R_e = W_e - P, P = U U^T W_e V V^T
                    ur, vr = u.float(), v.float()
                    self.residual_norm[key] = (w - ur @ (ur.t() @ w @ vr) @ vr.t()).flatten(1).norm(dim=1)
                self.residual_norm[key] = self.residual_norm[key].to(w.device)
                self.stage_weights.setdefault(key, w.clone())

    def state_dict(self) -> dict:
        return {"subspaces": {k: (u.detach().cpu(), v.detach().cpu()) for k, (u, v) in self.subspaces.items()},
                "residual_norm": dict(self.residual_norm)}

    def load_state_dict(self, state: dict) -> None:
        self.subspaces = dict(state.get("subspaces", self.subspaces))  # none saved: the init's (the same numbers)
        self.residual_norm = {k: v.float() for k, v in state.get("residual_norm", {}).items()}

    @torch.no_grad()
    def stage_end(self, model, stage) -> dict:
        """How far the stage moved the experts: ||dW_e|| relative to the init residual's norm ||R_e|| and to
        ||W_e|| (mean and max over experts and layers). AdamW normalises each coordinate, so a stage that may
        only move the residual can still move it by many times its own norm."""
        rel_res, rel_w, res_w = [], [], []
        for key, p in self.matrices(model, trainable_only=False):
            start = self.stage_weights.pop(key, None)
            if start is None:
                continue
            moved = (full(p).detach().float() - start).flatten(1).norm(dim=1)
            norm = start.flatten(1).norm(dim=1).clamp_min(1e-12)
            rel_res.append(moved / self.residual_norm[key].clamp_min(1e-12))
            rel_w.append(moved / norm)
            res_w.append(self.residual_norm[key] / norm)
        if not rel_res:
            return {}
        rel_res, rel_w, res_w = torch.cat(rel_res), torch.cat(rel_w), torch.cat(res_w)
        out = {"vs_residual_mean": float(rel_res.mean()), "vs_residual_max": float(rel_res.max()),
               "vs_weight_mean": float(rel_w.mean()), "residual_vs_weight_mean": float(res_w.mean())}
        log.info("stage %s moved the SPRI experts by %.3g x their residual's norm (mean; max %.3g), %.3g x ||W|| "
                 "(the residual is %.3g x ||W||)", stage.name, *out.values())
        return {"expert_movement": out}
