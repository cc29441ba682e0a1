"""`upcycle=cluster` (Cluster-aware Upcycling, Chu et al. 2026).

Spherical k-means splits each MoE layer's FFN inputs (final_layer_norm outputs) into E clusters; expert e is
the dense FFN restricted, by a regularised data-aware truncated SVD, to what its cluster's inputs (and the
hidden activations they produce in that expert) need; router rows are the unit centroids scaled so that the
logits are O(`router_temperature`). Training adds the expert-ensemble self-distillation loss
(`moe.self_distill`, on by default in conf/upcycle/cluster.yaml).

How, and why:

* k-means runs on the seeded token sample of the calibration pass (`calibration_tokens` per layer bounds only
  that sample). Then streaming passes of the dense model over *all* calibration batches assign
  every valid token (padding excluded: the passes reuse calibration.capture_ffn_inputs one batch at a time) to
  its nearest centroid and accumulate per-cluster Gram matrices X_e^T X_e and counts in float64 - no token
  cap per cluster.
* The SVD weights each expert by its cluster's covariance shrunk toward the layer's pooled one,
  C_e' = (1 - `shrinkage`) C_e + `shrinkage` C_pool + `ridge` * tr/in * I. Unregularised, U_r U_r^T W
  P_span(X_e) would zero every input direction outside the span of the cluster's tokens, whatever `energy`
  says (W2 rebuilt so from 2,048 tokens of d_ff 3,072 is 33% off on fresh tokens); C_e' is full rank, so
  truncation is decided by `energy` (or `rank`) alone and `energy: 1.0` gives W exactly.
  weighted: (W L)_r L^-1 with C_e' = L L^T (best rank-r W_e in E_{x~C_e'} ||(W - W_e) x||^2; energy is the
  share of the squared singular values of W L); projected: W Q_r Q_r^T with Q_r the top eigenvectors of
  C_e' (energy is the share of its eigenvalues).
* W2_e is fitted to expert e's OWN hidden activations H_e = GELU(X_e W1_e^T + b1) (a second pass, after
  every W1_e is known), shrunk toward the layer's pooled hidden Gram (the sum over experts).
* A cluster with fewer tokens than `min_cluster_factor` x the FFN's input dimension d (or an explicit
  `min_cluster_tokens`) keeps an exact copy of the dense FFN (counted in the report): below d tokens its
  own covariance is rank deficient and mostly the shrinkage target.
* Router rows are unit centroids x `router_temperature` / (mean ||x|| of the layer's tokens): logits are
  the cosines times ||x|| / mean ||x||, about [-T, T], not O(||x||) (~28 after LayerNorm at d 768, which
  would saturate the softmax at init: mean top-1 0.95, self-distillation never firing, z-loss ~45x a
  std-0.02 router's). Default T = 1.0: init routing follows the clusters (same argmax) with soft weights.

Each layer's report row gets cluster_sizes (all calibration tokens), cluster_ranks, clusters_copied_dense,
min_cluster_tokens (the threshold used), kmeans_tokens, gram_tokens, router_input_norm, and the init
router's router_top1_fit / router_z_loss_fit on the k-means sample (fit tokens; the report's router_top1_mean /
router_z_loss and output_deviation are on the held-out calibration batches when there are any).

Cost: E d^2 (pass 1) and, per pass-2 group, E d_ff^2 float64 accumulators per layer on the weights' device
(8 experts, d_ff 3,072: 0.6 GB a layer); pass 2 holds at most `hidden_gram_gib` of them and makes more
passes if the layers need more. One fp64 eigendecomposition of d_ff x d_ff per expert per layer.

When: `fit` (given the number of experts) runs the passes for every layer on the still-dense model,
before any MoE layer is installed; `init_experts` then fills each block from its layer's fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from src.models.moe import MoEBlock, router_top1, router_z
from src.models.upcycling.base import Calibration, Strategy, StrategyFacts, copy_dense, register_strategy
from src.models.upcycling.config import SVD_MODES, ClusterConfig
from src.models.upcycling.spri import principal_rank
from src.utils.errors import UserError
from src.utils.seeding import name_seed

ALL_TOKENS = 2**62  # capture_ffn_inputs' cap, set so that it keeps every token of a batch


def spherical_kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(unit centroids (k, D), labels (N,)) by cosine similarity, k-means++ init; deterministic by ``gen``."""
    device, x = x.device, x.cpu()  # on the CPU: the generator is a CPU one, and this is cheap
    n = x.shape[0]
    if n < k:
        raise UserError(f"spherical k-means: {n} calibration tokens for {k} clusters; raise "
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


# -- the regularised data-aware SVD --------------------------------------------------------------


def regularised_cov(gram: torch.Tensor, n: int, pooled: torch.Tensor | None = None, shrinkage: float = 0.0,
                    ridge: float = 1e-6) -> torch.Tensor:
    """(1 - shrinkage) gram / n + shrinkage * pooled + ridge * (trace / in) * I, float64 (pooled: a covariance)."""
    c = gram.double() / max(1, n)
    if pooled is not None and shrinkage > 0:
        c = (1 - shrinkage) * c + shrinkage * pooled.double()
    mu = ridge * float(torch.diagonal(c).sum()) / c.shape[0]
    return c + torch.eye(c.shape[0], dtype=c.dtype, device=c.device) * max(mu, 1e-300)


def _kept(s: torch.Tensor, rank: int | None, energy: float | None) -> int:
    """Components kept of the descending ``s``: `rank` (capped), all at energy >= 1, else principal_rank."""
    if rank is not None:
        return min(int(rank), s.numel())
    if energy is not None and energy >= 1.0:
        return s.numel()
    return principal_rank(s, None, energy)


def weight_from_cov(w: torch.Tensor, cov: torch.Tensor, mode: str, rank: int | None,
                    energy: float | None) -> tuple[torch.Tensor, int]:
    """W (out, in) truncated in the metric of the (full-rank) input covariance ``cov`` (in, in): (W_e, rank).

    weighted: (W L)_r L^-1 with cov = L L^T; projected: W Q_r Q_r^T with Q_r cov's top eigenvectors. Keeping
    every component returns W itself (what the formula gives, without its round-off).
    """
    if mode not in SVD_MODES:
        raise UserError(f"upcycle.svd_mode must be one of {SVD_MODES}, got '{mode}'")
    lam, q = torch.linalg.eigh(cov.double())
    lam, q = lam.flip(0).clamp_min(1e-300), q.flip(1)  # descending
    wd = w.detach().to(cov.device, torch.float64)
    if mode == "projected":
        r = _kept(lam.sqrt(), rank, energy)
        if r >= lam.numel():
            return w.detach().clone(), r
        qr = q[:, :r]
        return ((wd @ qr) @ qr.t()).to(w.device, w.dtype), r
    root = lam.sqrt()
    u, s, zh = torch.linalg.svd(wd @ (q * root), full_matrices=False)  # W L, L = Q diag(sqrt(lam))
    r = _kept(s, rank, energy)
    if r >= s.numel():
        return w.detach().clone(), r
    b_r = (u[:, :r] * s[:r]) @ zh[:r]
    return ((b_r / root) @ q.t()).to(w.device, w.dtype), r  # (W L)_r L^-1, L^-1 = diag(1/sqrt(lam)) Q^T


def data_aware_weight(w: torch.Tensor, x: torch.Tensor, mode: str = "weighted", rank: int | None = None,
                      energy: float | None = None, ridge: float = 1e-6, pooled: torch.Tensor | None = None,
                      shrinkage: float = 0.0) -> tuple[torch.Tensor, int]:
    """W (out, in) restricted to the inputs ``x`` (n, in) by the regularised data-aware SVD: (W_e, kept rank)."""
    xd = x.double()
    return weight_from_cov(w, regularised_cov(xd.t() @ xd, x.shape[0], pooled, shrinkage, ridge), mode, rank, energy)


# -- the fit: k-means on the sample, Grams over every token ------------------------------------------


def _kmeans_gen(name: str) -> torch.Generator:
    """k-means++ seed per layer name (the run seed enters through the seeded sample's content and order)."""
    return torch.Generator().manual_seed(name_seed("cluster", name))


@dataclass
class LayerFit:
    centroids: torch.Tensor  # (E, d) unit, on the weights' device
    mean_norm: float
    sizes: list[int]
    copied: list[bool]
    ranks: list[dict | None]
    w1: torch.Tensor  # (E, d_ff, d), CPU, the weights' dtype
    w2: torch.Tensor  # (E, d, d_ff)
    min_tokens: int


@dataclass
class ClusterState:
    """A layer's state for `init_experts`: its fit, and the token sample the report reads the router on."""

    fit: LayerFit
    sample: torch.Tensor  # (n, d) the layer's captured FFN inputs (the k-means sample)


class TokenSource(Protocol):
    """What `fit_layers` reads: `stream(names, fn)` calls fn(name, tokens (n, d)) over every token of the
    named layers; `dense[name]` = (fc1, fc2); `samples[name]` = the k-means sample."""

    dense: dict[str, tuple[nn.Linear, nn.Linear]]
    samples: dict[str, torch.Tensor]

    def stream(self, names: list[str], fn: Callable[[str, torch.Tensor], None]) -> None: ...


class _Batches:
    """The TokenSource of an upcycling: the still-dense model, its chosen FFN layers and the calibration batches
    (`fit` runs before any MoE layer is installed)."""

    def __init__(self, model: nn.Module, layers: list[tuple[str, nn.Module]], batches: list[dict],
                 samples: dict[str, torch.Tensor]):
        self.model, self.layers, self.batches, self.samples = model, list(layers), batches, samples
        self.dense = {name: (layer.fc1, layer.fc2) for name, layer in layers}

    def stream(self, names, fn) -> None:
        from src.models.upcycling.calibration import capture_ffn_inputs

        chosen = [(name, layer) for name, layer in self.layers if name in names]
        for batch in self.batches:  # one batch at a time: calibration.py's own padding masks, bounded memory
            for name, x in capture_ffn_inputs(self.model, chosen, [batch], ALL_TOKENS).items():
                fn(name, x)


@torch.no_grad()
def fit_layers(source: TokenSource, E: int, cfg: ClusterConfig) -> dict[str, LayerFit]:
    """Every layer's experts: k-means on the sample, pass 1 (cluster Grams of X), W1_e, pass 2 (Grams of each
    expert's own hidden activations, in groups of layers whose Grams fit in `hidden_gram_gib`), W2_e."""
    fitter = _LayerFitter(source, E, cfg)
    fitter.kmeans()
    source.stream(fitter.names, fitter.pass1)
    fits = {name: fitter.fit_w1(name) for name in fitter.names}
    for group in fitter.pass2_groups():
        fitter.start_pass2(group, fits)
        source.stream(group, fitter.pass2)
        for name in group:
            fitter.fit_w2(name, fits[name])
    return fits


class _LayerFitter:
    """The state of `fit_layers`' passes: per layer, centroids, the float64 Gram accumulators and counts."""

    def __init__(self, source: TokenSource, E: int, cfg: ClusterConfig) -> None:
        self.source, self.E, self.cfg = source, E, cfg
        self.names = list(source.dense)
        self.dev = {name: source.dense[name][0].weight.device for name in self.names}
        self.cent, self.gram, self.count, self.norm = {}, {}, {}, {}
        self.hgram: dict[str, torch.Tensor | None] = {}
        self.hcount: dict[str, torch.Tensor] = {}
        self.w1dev: dict[str, torch.Tensor | None] = {}

    def kmeans(self) -> None:
        """Spherical k-means of each layer's token sample; empty pass-1 accumulators."""
        E = self.E
        for name in self.names:
            x = self.source.samples.get(name)
            if x is None or x.shape[0] == 0:
                raise UserError(f"upcycle=cluster: no calibration tokens for {name} (check "
                                "upcycle.calibration_examples)")
            c, _ = spherical_kmeans(x.float().cpu(), E, self.cfg.kmeans_iters, _kmeans_gen(name))
            self.cent[name] = c.to(self.dev[name], torch.float64)
            d = c.shape[1]
            self.gram[name] = torch.zeros(E, d, d, dtype=torch.float64, device=self.dev[name])
            self.count[name] = torch.zeros(E, dtype=torch.long, device=self.dev[name])
            self.norm[name] = 0.0

    def assign(self, name: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.dev[name], torch.float64)
        return x, (F.normalize(x, dim=1) @ self.cent[name].t()).argmax(1)

    def pass1(self, name: str, x: torch.Tensor) -> None:
        x, lab = self.assign(name, x)
        for e in lab.unique().tolist():
            xe = x[lab == e]
            self.gram[name][e] += xe.t() @ xe
        self.count[name] += torch.bincount(lab, minlength=self.E)
        self.norm[name] += float(x.norm(dim=1).sum())

    def fit_w1(self, name: str) -> LayerFit:
        """W1_e from each cluster's regularised covariance (clusters under min_cluster_tokens keep the dense W1)."""
        E, cfg = self.E, self.cfg
        fc1, fc2 = self.source.dense[name]
        d_ff, d = fc1.weight.shape
        sizes = self.count[name].tolist()
        total = sum(sizes)
        min_tokens = int(cfg.min_cluster_tokens) if cfg.min_cluster_tokens is not None else \
            math.ceil(cfg.min_cluster_factor * d)
        copied = [n < max(1, min_tokens) for n in sizes]
        pooled = self.gram[name].sum(0) / max(1, total)
        w1 = fc1.weight.detach().cpu().expand(E, d_ff, d).clone()
        ranks: list[dict | None] = [None] * E
        for e in range(E):
            if not copied[e]:
                cov = regularised_cov(self.gram[name][e], sizes[e], pooled, cfg.shrinkage, cfg.ridge)
                w, r = weight_from_cov(fc1.weight, cov, cfg.svd_mode, cfg.rank, cfg.energy)
                w1[e].copy_(w)
                ranks[e] = {"w1": r}
        self.gram[name] = None  # pass-2 memory
        return LayerFit(centroids=self.cent[name].float(), mean_norm=self.norm[name] / max(1, total), sizes=sizes,
                        copied=copied, ranks=ranks, w1=w1,
                        w2=fc2.weight.detach().cpu().expand(E, *fc2.weight.shape).clone(), min_tokens=min_tokens)

    def pass2_groups(self) -> list[list[str]]:
        """The layers in groups whose float64 hidden Grams fit in `hidden_gram_gib` together."""
        budget = self.cfg.hidden_gram_gib * 2**30
        groups: list[list[str]] = [[]]
        used = 0.0
        for name in self.names:
            size = self.E * self.source.dense[name][0].weight.shape[0] ** 2 * 8
            if groups[-1] and used + size > budget:
                groups.append([])
                used = 0.0
            groups[-1].append(name)
            used += size
        return groups

    def start_pass2(self, group: list[str], fits: dict[str, LayerFit]) -> None:
        for name in group:
            d_ff = self.source.dense[name][0].weight.shape[0]
            self.hgram[name] = torch.zeros(self.E, d_ff, d_ff, dtype=torch.float64, device=self.dev[name])
            self.hcount[name] = torch.zeros(self.E, dtype=torch.long, device=self.dev[name])
            self.w1dev[name] = fits[name].w1.to(self.dev[name], torch.float64)

    def pass2(self, name: str, x: torch.Tensor) -> None:
        x, lab = self.assign(name, x)
        b1 = self.source.dense[name][0].bias
        for e in lab.unique().tolist():
            h = F.gelu(F.linear(x[lab == e], self.w1dev[name][e], None if b1 is None else b1.double()))
            self.hgram[name][e] += h.t() @ h
        self.hcount[name] += torch.bincount(lab, minlength=self.E)

    def fit_w2(self, name: str, fit: LayerFit) -> None:
        """W2_e from each expert's own hidden-activation covariance."""
        cfg, fc2 = self.cfg, self.source.dense[name][1]
        self.w1dev[name] = None
        sizes = self.hcount[name].tolist()
        pooled = self.hgram[name].sum(0) / max(1, sum(sizes))
        for e in range(self.E):
            if not fit.copied[e]:
                cov = regularised_cov(self.hgram[name][e], sizes[e], pooled, cfg.shrinkage, cfg.ridge)
                w, r = weight_from_cov(fc2.weight, cov, cfg.svd_mode, cfg.rank, cfg.energy)
                fit.w2[e].copy_(w)
                fit.ranks[e]["w2"] = r
        self.hgram[name] = None


@register_strategy
class Cluster(Strategy[ClusterConfig, ClusterState]):
    facts = StrategyFacts(needs_calibration=True)

    def fit(self, calibration: Calibration, cfg: ClusterConfig) -> dict[str, ClusterState]:
        """Every layer's fit (k-means, Gram passes over all calibration batches) on the still-dense model."""
        c = calibration
        if not c.inputs or not all(x.shape[0] for x in c.inputs.values()):
            raise UserError("upcycle=cluster needs calibration inputs: the training data gave none "
                            "(check upcycle.calibration_examples and the train split)")
        fits = fit_layers(_Batches(c.model, c.layers, c.batches, c.inputs), c.num_experts, cfg)
        return {name: ClusterState(fits[name], c.inputs[name]) for name, _ in c.layers}

    @torch.no_grad()
    def init_experts(self, moe: MoEBlock, fc1: nn.Linear, fc2: nn.Linear, cfg: ClusterConfig,
                     gen: torch.Generator, state: ClusterState) -> dict:
        fit, sample = state.fit, state.sample
        copy_dense(moe, fc1, fc2)
        bank = moe.experts
        bank.w1.copy_(fit.w1)
        bank.w2.copy_(fit.w2)
        scale = cfg.router_temperature / max(fit.mean_norm, 1e-12)
        moe.router.weight.copy_((fit.centroids * scale).to(moe.router.weight.device, moe.router.weight.dtype))
        logits = moe.router(sample.to(moe.router.weight.device))  # on the k-means sample: fit tokens
        return {"cluster_sizes": fit.sizes, "cluster_ranks": [None if r is None else dict(r) for r in fit.ranks],
                "clusters_copied_dense": sum(fit.copied), "min_cluster_tokens": fit.min_tokens,
                "kmeans_tokens": sample.shape[0], "gram_tokens": sum(fit.sizes), "router_input_norm": fit.mean_norm,
                "router_top1_fit": float(router_top1(logits)), "router_z_loss_fit": float(router_z(logits))}
