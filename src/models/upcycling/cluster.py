"""`upcycle=cluster` (Cluster-aware Upcycling, Chu et al. 2026).

A calibration pass of the dense model records each MoE layer's FFN inputs; spherical k-means splits
them into E clusters; expert e is the dense FFN restricted, by a data-aware truncated SVD, to what
its cluster's inputs (and the hidden activations they produce) need; router rows are the unit
cluster centroids times a temperature, so at init a token goes to the experts of the clusters it is
closest to. Training adds the expert-ensemble self-distillation loss (`moe.self_distill`, on by
default in conf/upcycle/cluster.yaml).

Choices the paper leaves open, all knobs: `svd_mode` (weighted: W S_e with S_e = (X_e^T X_e/n)^1/2,
truncate, map back with S_e^+; projected: W V_r V_r^T onto the top-r input directions of X_e),
`rank` or `energy` (the truncation), and W2 gets the same treatment with the dense hidden
activations of its cluster as inputs. A cluster with fewer than `min_cluster_tokens` tokens keeps
an exact copy of the dense FFN (counted in the report).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from src.models.upcycling.base import Strategy, UpcycleConfig, copy_dense, register_strategy
from src.models.upcycling.spri import principal_rank

SVD_MODES = ("weighted", "projected")


@dataclass
class ClusterConfig(UpcycleConfig):
    calibration_examples: int = 512
    kmeans_iters: int = 50
    svd_mode: str = "weighted"
    rank: int | None = None  # an int overrides energy
    energy: float | None = 0.95
    router_temperature: float = 1.0
    min_cluster_tokens: int = 8
    eps: float = 1e-6  # singular values below eps * the largest count as zero (pseudo-inverse)

    def check(self) -> None:
        super().check()
        if self.svd_mode not in SVD_MODES:
            raise ValueError(f"upcycle.svd_mode: '{self.svd_mode}' is not one of {SVD_MODES}")
        if self.calibration_examples < 1:
            raise ValueError("upcycle.calibration_examples: cluster upcycling needs at least one example")
        if self.router_temperature <= 0 or self.kmeans_iters < 1:
            raise ValueError("upcycle.router_temperature must be > 0 and upcycle.kmeans_iters >= 1")


def spherical_kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit centroids (k, D), labels (N,)) by cosine similarity, k-means++ init; deterministic by ``gen``."""
    device, x = x.device, x.cpu()  # on the CPU: the generator is a CPU one, and this is cheap
    n = x.shape[0]
    if n < k:
        raise ValueError(f"spherical k-means: {n} calibration tokens for {k} clusters; raise "
                         "upcycle.calibration_examples")
    xn = F.normalize(x.double(), dim=1)
    centroids = [xn[int(torch.randint(n, (1,), generator=gen))]]
    dist = (1 - xn @ centroids[0]).clamp_min(0)
    for _ in range(1, k):
        weights = dist.pow(2)
        i = int(torch.multinomial(weights, 1, generator=gen)) if float(weights.sum()) > 0 else \
            int(torch.randint(n, (1,), generator=gen))
        centroids.append(xn[i])
        dist = torch.minimum(dist, (1 - xn @ xn[i]).clamp_min(0))
    c = torch.stack(centroids)
    labels = None
    for _ in range(max(1, iters)):
        sims = xn @ c.t()
        new = sims.argmax(1)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        sums = torch.zeros_like(c).index_add_(0, labels, xn)
        counts = torch.bincount(labels, minlength=k)
        for j in torch.nonzero(counts == 0).flatten().tolist():  # an empty cluster takes the worst-fit token
            far = int(sims.max(1).values.argmin())
            sums[j], labels[far] = xn[far], j
        c = F.normalize(sums, dim=1)
    return c.to(device, x.dtype), labels.to(device)


def data_aware_weight(w: torch.Tensor, x: torch.Tensor, mode: str, rank: int | None, energy: float | None,
                      eps: float = 1e-6) -> tuple[torch.Tensor, int]:
    """W (out, in) restricted to the inputs ``x`` (n, in): (W_e, kept rank).

    weighted: SVD of W S (S = (x^T x / n)^1/2), keep the top components, map back with S^+;
    projected: W V_r V_r^T with V_r the top input directions of x. Computed from the thin SVD of x, so
    the cost is set by the number of tokens, not by in^2.
    """
    if mode not in SVD_MODES:
        raise ValueError(f"upcycle.svd_mode must be one of {SVD_MODES}, got '{mode}'")
    wd = w.double()
    _, sigma, vh = torch.linalg.svd(x.double() / x.shape[0] ** 0.5, full_matrices=False)
    keep = sigma > eps * sigma[0].clamp_min(1e-300)
    sigma, v = sigma[keep], vh[keep].t()  # C = V diag(sigma^2) V^T on the inputs' span
    if mode == "projected":
        r = principal_rank(sigma, rank, energy) if rank is None else min(rank, sigma.numel())
        vr = v[:, :r]
        return ((wd @ vr) @ vr.t()).to(w.dtype), r
    b = (wd @ v) * sigma  # W S restricted to the span: W S = B V^T
    u, lam, zh = torch.linalg.svd(b, full_matrices=False)
    r = principal_rank(lam, rank, energy) if rank is None else min(rank, lam.numel())
    b_r = (u[:, :r] * lam[:r]) @ zh[:r]
    return ((b_r / sigma) @ v.t()).to(w.dtype), r  # (W S)_r S^+ = B_r diag(1/sigma) V^T


@register_strategy("cluster")
class Cluster(Strategy):
    config = ClusterConfig
    needs_calibration = True

    @torch.no_grad()
    def init_experts(self, moe, fc1, fc2, cfg: ClusterConfig, gen, calib=None) -> dict:
        if calib is None or calib.shape[0] == 0:
            raise ValueError("upcycle=cluster needs calibration inputs: the training data gave none "
                             "(check upcycle.calibration_examples and the train split)")
        copy_dense(moe, fc1, fc2)
        E = moe.experts.num_experts
        x = calib.to(fc1.weight.device, torch.float32)
        centroids, labels = spherical_kmeans(x, E, cfg.kmeans_iters, gen)
        moe.router.weight.copy_(centroids.to(moe.router.weight.dtype) * cfg.router_temperature)
        bank = moe.experts
        sizes = torch.bincount(labels, minlength=E).tolist()
        ranks, copied = [], 0
        for e in range(E):
            xe = x[labels == e]
            if xe.shape[0] < cfg.min_cluster_tokens:
                copied += 1
                ranks.append(None)
                continue
            w1, r1 = data_aware_weight(fc1.weight, xe, cfg.svd_mode, cfg.rank, cfg.energy, cfg.eps)
            hidden = F.gelu(F.linear(xe, fc1.weight, fc1.bias))
            w2, r2 = data_aware_weight(fc2.weight, hidden, cfg.svd_mode, cfg.rank, cfg.energy, cfg.eps)
            bank.w1[e].copy_(w1)
            bank.w2[e].copy_(w2)
            ranks.append({"w1": r1, "w2": r2})
        return {"cluster_sizes": sizes, "cluster_ranks": ranks, "clusters_copied_dense": copied}
