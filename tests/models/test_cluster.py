"""Cluster-aware upcycling after the review: regularised data-aware SVD (held-out reconstruction, truncation
by energy alone), Grams over every calibration token, the small-cluster fallback, and a router that is not
saturated at init."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import biased_tiny_whisper, calib_batch, ucfg
from torch import nn

from src.models.config import MoEConfig
from src.models.moe import MoEBlock
from src.models.upcycling import STRATEGIES
from src.models.upcycling.apply import upcycle_model
from src.models.upcycling.cluster import ClusterState, fit_layers
from src.models.upcycling.config import ClusterConfig
from src.models.whisper_moe import MoEEncoderLayer, moe_blocks

D, FF = 16, 64


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny LAPACK calls: on a loaded 2-core machine, thread contention made them 100x slower (60 s vs 0.5 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planted(n_per: int, sub: int, seed: int, E: int = 2, d: int = D) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens, cluster id): cluster e = its centre plus noise in its own ``sub``-dim subspace (no LayerNorm,
    so each cluster spans a known subspace). Same seed = same subspaces; the draw depends on n_per only."""
    g = torch.Generator().manual_seed(seed)
    basis = torch.linalg.qr(torch.randn(d, d, generator=g))[0]
    centres = [basis[:, e * sub] * 4.0 for e in range(E)]
    spans = [basis[:, e * sub + 1:(e + 1) * sub] for e in range(E)]
    h = torch.Generator().manual_seed(seed + 1000 + n_per)
    xs = [centres[e] + torch.randn(n_per, sub - 1, generator=h) @ spans[e].t() for e in range(E)]
    return torch.cat(xs), torch.arange(E).repeat_interleave(n_per)


def dense_ffn(d: int = D, f: int = FF, seed: int = 0) -> tuple[nn.Linear, nn.Linear]:
    torch.manual_seed(seed)
    fc1, fc2 = nn.Linear(d, f), nn.Linear(f, d)
    with torch.no_grad():
        fc1.bias.normal_(0, 0.1)
        fc2.bias.normal_(0, 0.1)
    return fc1, fc2


class SampleSource:
    """A TokenSource of one layer given as a plain token tensor: k-means and the Gram passes both read it all."""

    def __init__(self, x: torch.Tensor, fc1: nn.Linear, fc2: nn.Linear, name: str = "layer") -> None:
        self.samples, self.dense = {name: x}, {name: (fc1, fc2)}

    def stream(self, names: list[str], fn) -> None:
        for name in names:
            fn(name, self.samples[name])


def fit_sample(x: torch.Tensor, fc1: nn.Linear, fc2: nn.Linear, num_experts: int, cfg: ClusterConfig
               ) -> ClusterState:
    """One layer's cluster fit from a sample of its FFN inputs alone (every token of it in the Gram statistics)."""
    return ClusterState(fit_layers(SampleSource(x, fc1, fc2), num_experts, cfg)["layer"], x)


def init(x: torch.Tensor, E: int = 2, fc=None, **kw) -> tuple[MoEBlock, dict, nn.Linear, nn.Linear]:
    fc1, fc2 = fc or dense_ffn(x.shape[1])
    moe = MoEBlock(x.shape[1], fc1.weight.shape[0], MoEConfig(num_experts=E, top_k=1))
    cfg = ClusterConfig(**kw)
    cfg.check()
    strategy = STRATEGIES["cluster"]
    state = fit_sample(x, fc1, fc2, E, cfg)
    report = strategy.init_experts(moe, fc1, fc2, cfg, torch.Generator().manual_seed(0), state)
    return moe, report, fc1, fc2


def expert_out(moe: MoEBlock, e: int, x: torch.Tensor) -> torch.Tensor:
    bank = moe.experts
    return F.linear(F.gelu(F.linear(x, bank.w1[e], bank.b1[e])), bank.w2[e], bank.b2[e])


def heldout_error(moe: MoEBlock, fc1, fc2, x: torch.Tensor) -> float:
    """Mean over experts of the relative FFN-output error on fresh tokens routed (top-1) to that expert."""
    with torch.no_grad():
        route = moe.router(x).argmax(-1)
        dense = fc2(F.gelu(fc1(x)))
        errs = [float((expert_out(moe, e, x[route == e]) - dense[route == e]).norm() / dense[route == e].norm())
                for e in range(moe.experts.num_experts) if bool((route == e).any())]
    return sum(errs) / len(errs)


# -- (a) held-out reconstruction, truncation by energy alone -------------------------------------


@pytest.mark.parametrize("mode", ["weighted", "projected"])
def test_energy_one_is_the_dense_ffn_on_fresh_tokens_with_fewer_tokens_than_d_ff(mode):
    x, _ = planted(40, 6, seed=0)  # 40 tokens per cluster < d_ff = 64 (and each cluster spans 6 of 16 dims)
    fresh, _ = planted(500, 6, seed=0)
    moe, report, fc1, fc2 = init(x, svd_mode=mode, energy=1.0, min_cluster_tokens=1)
    assert report["clusters_copied_dense"] == 0 and report["cluster_sizes"] == [40, 40]
    full = {"w1": D, "w2": D if mode == "weighted" else FF}  # weighted: rank of W L; projected: of C_e'
    assert all(r == full for r in report["cluster_ranks"])
    assert heldout_error(moe, fc1, fc2, fresh) < 1e-5
    # a direction outside every cluster's span is kept (the unregularised SVD zeroed it: W P_span(X_e))
    u = torch.linalg.svd(x.t().double())[0][:, 12:].float()  # both clusters' spans: 12 of 16 dims
    outside = u @ torch.randn(4, generator=torch.Generator().manual_seed(5))
    assert float((x @ outside).abs().max()) < 1e-4 * float(outside.norm())
    for e in range(2):
        torch.testing.assert_close(moe.experts.w1[e] @ outside, fc1.weight @ outside, rtol=1e-5, atol=1e-6)


def test_truncation_is_decided_by_energy_and_held_out_error_follows_it():
    x, _ = planted(40, 6, seed=1)
    fresh, _ = planted(500, 6, seed=1)
    errs, ranks = {}, {}
    for energy in (0.9, 0.99, 0.999, 1.0):
        moe, report, fc1, fc2 = init(x, energy=energy, min_cluster_tokens=1)
        errs[energy] = heldout_error(moe, fc1, fc2, fresh)
        ranks[energy] = [(r["w1"], r["w2"]) for r in report["cluster_ranks"]]
    assert all(r1 < D and r2 < D for r1, r2 in ranks[0.9])  # truncated by energy
    assert all(r == (D, D) for r in ranks[1.0])
    assert errs[0.9] > errs[0.99] > errs[0.999] > errs[1.0]
    assert errs[0.999] < 0.05 and errs[1.0] < 1e-5  # the fit generalises: no collapse onto the cluster's span


# -- (b) the router at init ----------------------------------------------------------------------


def test_router_is_not_saturated_at_init_on_layernorm_scale_inputs():
    d, E, T = 64, 4, 1.0
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(E, d, generator=g) * 1.5
    lab = torch.arange(E).repeat_interleave(200)
    x = F.layer_norm(centres[lab] + torch.randn(len(lab), d, generator=g), (d,))  # ||x|| = sqrt(d)
    assert abs(float(x.norm(dim=1).mean()) - d**0.5) < 0.1
    moe, report, _, _ = init(x, E=E, fc=dense_ffn(d, 2 * d), energy=0.95, router_temperature=T)
    with torch.no_grad():
        logits = moe.router(x)
    top1 = float(logits.softmax(-1).max(-1).values.mean())
    assert top1 < 0.7  # bound for E=4, T=1: logits are cosines times ||x|| / mean ||x||
    assert report["router_top1_fit"] == pytest.approx(top1, rel=1e-5)
    assert report["router_z_loss_fit"] < (T * 1.5 + math.log(E)) ** 2
    assert report["router_input_norm"] == pytest.approx(d**0.5, rel=0.02)
    torch.testing.assert_close(moe.router.weight.norm(dim=1) * report["router_input_norm"], torch.full((E,), T))
    # the old scaling (unit centroids x T: logits O(||x||)) saturates on the same inputs
    saturated = (logits * report["router_input_norm"]).softmax(-1).max(-1).values.mean()
    assert float(saturated) > 0.9
    # and the routing still follows the clusters
    route = logits.argmax(-1)
    assert all(len(set(route[lab == e].tolist())) == 1 for e in range(E))


# -- the strategy inside upcycle_model: Grams over every token, fallback, held-out report ------------


def tiny(E: int = 4):
    return biased_tiny_whisper()


def upcycle(E: int = 4, heldout: bool = False, **kw):
    model = tiny(E)
    dense = {n: p.detach().clone() for n, p in model.named_parameters()}
    report = upcycle_model(model, MoEConfig(num_experts=E, top_k=1), ucfg("cluster", **kw), seed=0,
                           calib=[calib_batch(0), calib_batch(2)], progress=False,
                           heldout=[calib_batch(1)] if heldout else None)
    return model, dense, {r["name"]: r for r in report["layers"]}


def test_grams_use_every_calibration_token_not_the_kmeans_sample():
    # one expert: the clustering is trivial, so the experts depend on the Grams alone
    full = upcycle(E=1, calibration_tokens=10_000, energy=0.9, min_cluster_tokens=1)
    small = upcycle(E=1, calibration_tokens=8, energy=0.9, min_cluster_tokens=1)
    for (_, a), (_, b) in zip(moe_blocks(full[0]), moe_blocks(small[0]), strict=True):
        torch.testing.assert_close(a.experts.w1, b.experts.w1, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(a.experts.w2, b.experts.w2, rtol=1e-5, atol=1e-6)
    enc, dec = small[2]["encoder.layers.0"], small[2]["decoder.layers.0"]
    assert enc["kmeans_tokens"] == 8 and enc["gram_tokens"] == 104  # 2 batches x (32 + 20) real frames
    assert dec["gram_tokens"] == 16  # teacher-forced decoder tokens, padding excluded
    assert enc["cluster_ranks"][0]["w1"] < 32  # energy 0.9 truncates


def test_energy_one_upcycled_model_matches_dense_on_held_out_batches_and_layers_stay_moe():
    model, dense, rows = upcycle(heldout=True, energy=1.0, min_cluster_tokens=1)
    for name, moe in moe_blocks(model):
        assert rows[name]["output_deviation"] < 1e-5  # measured on the held-out batch
        assert rows[name]["router_top1_mean"] < 0.7
        assert rows[name]["clusters_copied_dense"] == 0
        torch.testing.assert_close(moe.experts.w1, dense[f"model.{name}.fc1.weight"].expand_as(moe.experts.w1))
    enc = model.model.encoder.layers[0]  # the dense FFNs swapped in for the passes are swapped out again
    assert isinstance(enc, MoEEncoderLayer) and isinstance(enc.mlp, MoEBlock) and not hasattr(enc, "fc1")


def test_small_clusters_keep_the_dense_ffn_and_are_counted():
    big, _ = planted(40, 6, seed=2)
    small, _ = planted(10, 6, seed=3)
    x = torch.cat([big[:40], small[10:]])  # cluster sizes 40 and 10, input dimension 16
    moe, report, fc1, fc2 = init(x, energy=0.9)
    assert report["min_cluster_tokens"] == D
    assert sorted(report["cluster_sizes"]) == [10, 40] and report["clusters_copied_dense"] == 1
    e_small = report["cluster_sizes"].index(10)
    assert report["cluster_ranks"][e_small] is None
    assert torch.equal(moe.experts.w1[e_small], fc1.weight) and torch.equal(moe.experts.w2[e_small], fc2.weight)
    assert not torch.allclose(moe.experts.w1[1 - e_small], fc1.weight)
    _, report, _, _ = init(x, energy=0.9, min_cluster_factor=0.5)  # threshold 8 tokens: none copied
    assert report["min_cluster_tokens"] == 8 and report["clusters_copied_dense"] == 0
    # in the tiny model (d 32, 16-104 tokens per layer) the default copies the small clusters; the sizes count
    # every calibration token, whatever the k-means sample
    rows = upcycle(calibration_tokens=8)[2]
    assert sum(rows["encoder.layers.0"]["cluster_sizes"]) == 104
    for row in rows.values():
        assert row["clusters_copied_dense"] == sum(n < 32 for n in row["cluster_sizes"])


def test_init_experts_overwrites_everything_when_called_again():
    x, _ = planted(40, 6, seed=4)
    moe, _, fc1, fc2 = init(x, energy=0.9)
    before = {k: v.clone() for k, v in moe.state_dict().items()}
    with torch.no_grad():
        for p in moe.parameters():
            p.normal_()
    cfg = ClusterConfig(energy=0.9)
    state = fit_sample(x, fc1, fc2, 2, cfg)
    STRATEGIES["cluster"].init_experts(moe, fc1, fc2, cfg, torch.Generator().manual_seed(0), state)
    for k, v in moe.state_dict().items():
        torch.testing.assert_close(v, before[k])


@pytest.mark.parametrize("bad", [{"shrinkage": 1.5}, {"ridge": 0.0}, {"energy": 1.2}, {"min_cluster_factor": -1},
                                 {"hidden_gram_gib": 0}])
def test_bad_knobs_are_errors(bad):
    with pytest.raises(ValueError, match="upcycle"):
        ClusterConfig(**bad).check()
