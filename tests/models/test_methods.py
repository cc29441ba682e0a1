"""The related methods: cluster-aware upcycling (k-means, data-aware SVD), expert-ensemble
self-distillation, DPSL and SD-MoE. Each test checks the property the method is defined by."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import upcycled
from scipy.stats import beta as scipy_beta

from src.models.config import DPSLConfig, MoEConfig, SDMoEConfig, SelfDistillConfig
from src.models.moe import MoEBlock, self_distill_loss
from src.models.router_losses import (
    ROUTER_LOSSES,
    MaskedRouting,
    MoELoss,
    beta_quantiles,
    dpsl_alphas,
    flat_for,
    token_masks,
)
from src.models.sd_moe import SpectralDecoupler
from src.models.upcycling.cluster import data_aware_weight, spherical_kmeans
from src.models.whisper_moe import moe_blocks

# -- k-means -----------------------------------------------------------------------------------


def planted_clusters(n_per: int = 200, k: int = 4, d: int = 16, spread: float = 0.15, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    centers = F.normalize(torch.randn(k, d, generator=g), dim=1)
    labels = torch.arange(k).repeat_interleave(n_per)
    x = centers[labels] + spread * torch.randn(k * n_per, d, generator=g) / d**0.5
    x = x * (0.5 + 2 * torch.rand(k * n_per, 1, generator=g))  # norms vary: spherical k-means ignores them
    return x, labels, centers


def same_partition(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal up to a relabelling."""
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_spherical_kmeans_recovers_planted_clusters_and_is_deterministic():
    x, truth, centers = planted_clusters()
    c1, l1 = spherical_kmeans(x, 4, 50, torch.Generator().manual_seed(3))
    c2, l2 = spherical_kmeans(x, 4, 50, torch.Generator().manual_seed(3))
    assert same_partition(l1, truth)
    assert torch.equal(l1, l2) and torch.equal(c1, c2)
    torch.testing.assert_close(c1.norm(dim=1), torch.ones(4))
    # each centroid is (close to) one planted direction
    assert float((c1 @ centers.t()).max(1).values.min()) > 0.98


def test_kmeans_needs_enough_tokens():
    with pytest.raises(ValueError, match="calibration_examples"):
        spherical_kmeans(torch.randn(3, 8), 4, 10, torch.Generator().manual_seed(0))


# -- data-aware SVD ------------------------------------------------------------------------------


def low_rank_inputs(n: int, d: int, r: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, r, generator=g) @ torch.randn(r, d, generator=g)


@pytest.mark.parametrize("mode", ["weighted", "projected"])
def test_data_aware_svd_reproduces_the_dense_layer_on_its_cluster_only(mode):
    d, f, r = 32, 64, 6
    w = torch.randn(f, d, generator=torch.Generator().manual_seed(1))
    mine, other = low_rank_inputs(400, d, r, 2), low_rank_inputs(400, d, r, 3)
    we, kept = data_aware_weight(w, mine, mode, rank=r, energy=None)
    assert kept == r
    err_mine = (mine @ we.t() - mine @ w.t()).norm() / (mine @ w.t()).norm()
    err_other = (other @ we.t() - other @ w.t()).norm() / (other @ w.t()).norm()
    assert float(err_mine) < 1e-4
    assert float(err_other) > 0.3
    # a lower rank keeps less of it
    we2, _ = data_aware_weight(w, mine, mode, rank=2, energy=None)
    assert float((mine @ we2.t() - mine @ w.t()).norm() / (mine @ w.t()).norm()) > 0.05


def test_cluster_upcycling_router_rows_are_scaled_unit_centroids_and_report_sizes():
    model, dense, report = upcycled("cluster", router_temperature=3.0, rank=None, energy=0.99, min_cluster_tokens=2)
    layers = dict(moe_blocks(model))
    enc = layers["encoder.layers.0"]
    rows = {r["name"]: r for r in report["layers"]}
    # unit centroids x temperature / mean input norm: logits O(temperature), not O(|x|)
    torch.testing.assert_close(enc.router.weight.norm(dim=1) * rows["encoder.layers.0"]["router_input_norm"],
                               torch.full((4,), 3.0))
    sizes = rows["encoder.layers.0"]["cluster_sizes"]
    assert len(sizes) == 4 and sum(sizes) == 52  # 32 + 20 real encoder frames of the calibration batch
    assert sum(rows["decoder.layers.0"]["cluster_sizes"]) == 8  # teacher-forced decoder tokens, padding excluded
    # the experts differ from the dense FFN (restricted to their clusters) but keep its biases
    w = dense["model.encoder.layers.0.fc1.weight"]  # the dense model's names
    assert all(not torch.allclose(enc.experts.w1[e], w) for e in range(4) if sizes[e] >= 2)
    torch.testing.assert_close(enc.experts.b1[0], dense["model.encoder.layers.0.fc1.bias"])


def test_cluster_needs_calibration():
    from helpers import MOE, tiny_whisper, ucfg

    from src.models.upcycling.apply import upcycle_model

    with pytest.raises(ValueError, match="calibration"):
        upcycle_model(tiny_whisper(), MOE, ucfg("cluster"), seed=0, calib=None, progress=False)


# -- self-distillation ---------------------------------------------------------------------------


def distill_moe(coef: float = 1.0, loss: str = "mse", identical: bool = False) -> MoEBlock:
    torch.manual_seed(0)
    cfg = MoEConfig(num_experts=4, top_k=2, self_distill=SelfDistillConfig(coef=coef, loss=loss, threshold=1.0))
    moe = MoEBlock(16, 32, cfg)
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.3)
    if identical:
        with torch.no_grad():
            for name in ("w1", "w2", "b1", "b2"):
                t = getattr(moe.experts, name)
                t.copy_(t[:1].expand_as(t))
    return moe.train()


@pytest.mark.parametrize("loss", ["mse", "kl"])
def test_self_distillation_is_zero_for_identical_experts(loss):
    moe = distill_moe(loss=loss, identical=True)
    assert float(self_distill_loss(moe, moe(torch.randn(2, 7, 16))[1], None)) == pytest.approx(0.0, abs=1e-6)
    moe = distill_moe(loss=loss)
    assert float(self_distill_loss(moe, moe(torch.randn(2, 7, 16))[1], None)) > 1e-4


def test_self_distillation_gradient_reaches_the_student_only():
    moe = distill_moe()
    x = torch.randn(1, 1, 16)  # one token: two experts in the student, all four in the teacher
    _, routing = moe(x)
    idx = routing.idx
    loss = self_distill_loss(moe, routing, None)
    grads = torch.autograd.grad(loss, [moe.experts.w1, moe.router.weight])
    chosen = set(idx.reshape(-1).tolist())
    # only the experts the tokens were routed to get a gradient: the teacher (all experts) gets none
    for e in range(4):
        assert (grads[0][e].abs().sum() > 0) == (e in chosen)
    assert grads[1].abs().sum() > 0  # through the student's top-k weights
    assert len(chosen) < 4, "premise: some expert is unused by the student"


def test_self_distillation_threshold_and_padding_select_tokens():
    moe = distill_moe()
    x = torch.randn(1, 5, 16)
    model = torch.nn.Module()
    model.decoder = torch.nn.Module()
    model.decoder.mlp = moe
    loss = MoELoss({})
    real = {"decoder_attention_mask": torch.ones(1, 5)}
    assert float(loss.loss(model, real, None, {"decoder": moe(x)[1]})["self_distill"]) > 0
    padding = {"decoder_attention_mask": torch.zeros(1, 5)}  # every token padding: nothing to distil
    assert float(loss.loss(model, padding, None, {"decoder": moe(x)[1]})["self_distill"]) == 0.0
    moe.cfg.self_distill.threshold = 1e-6  # no token is that uncertain
    assert float(loss.loss(model, real, None, {"decoder": moe(x)[1]})["self_distill"]) == 0.0


# -- DPSL ----------------------------------------------------------------------------------------


def test_beta_quantiles_match_scipy():
    for n, a, b in [(7, 1.0, 3.0), (100, 0.75, 2.25), (1, 2.0, 2.0)]:
        u = (np.arange(n) + 0.5) / n
        np.testing.assert_allclose(beta_quantiles(n, a, b), scipy_beta.ppf(u, a, b), rtol=1e-12)


@pytest.mark.parametrize("alpha", [1.0, [0.5, 1.0, 2.0, 4.0]])
def test_dpsl_is_small_on_prior_samples_and_grows_when_routing_collapses(alpha):
    E, n = 4, 4000
    a = torch.full((E,), float(alpha)) if isinstance(alpha, float) else torch.tensor(alpha)
    probs = torch.distributions.Dirichlet(a).sample((n,))
    fit = ROUTER_LOSSES["dpsl"](MaskedRouting(probs.log(), probs.topk(2).indices, E), alpha=a)
    collapsed = torch.full((n, E), -9.0)
    collapsed[:, 0] = 9.0
    bad = ROUTER_LOSSES["dpsl"](MaskedRouting(collapsed, collapsed.topk(2).indices, E), alpha=a)
    uniform = torch.zeros(n, E)
    flat = ROUTER_LOSSES["dpsl"](MaskedRouting(uniform, uniform.topk(2).indices, E), alpha=a)
    assert float(fit) < 1e-3
    assert float(bad) > 50 * float(fit) and float(flat) > 10 * float(fit)


def test_dpsl_gradient_moves_probabilities_towards_the_prior():
    E = 4
    logits = torch.randn(256, E, generator=torch.Generator().manual_seed(0)) * 0.01
    logits.requires_grad_(True)
    a = torch.ones(E)
    opt = torch.optim.Adam([logits], lr=0.05)
    first = None
    for _ in range(100):
        loss = ROUTER_LOSSES["dpsl"](MaskedRouting(logits, logits.topk(2).indices, E), alpha=a, num_quantiles=64)
        first = float(loss) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.1 * first


def test_dpsl_language_prior_raises_alpha_of_each_directions_experts():
    base, by_lang = dpsl_alphas(DPSLConfig(coef=1.0, alpha=1.0, language_prior="auto", prior_boost=2.0),
                                num_experts=4, top_k=2, languages=["de", "ja", "tr"])
    assert base.tolist() == [1.0] * 4
    assert by_lang.tolist() == [[3.0, 3.0, 1.0, 1.0], [1.0, 1.0, 3.0, 3.0], [3.0, 3.0, 1.0, 1.0]]
    _, named = dpsl_alphas(DPSLConfig(coef=1.0, language_prior={"ja": [3]}), 4, 2, ["de", "ja"])
    assert named.tolist() == [[1.0] * 4, [1.0, 1.0, 1.0, 3.0]]
    with pytest.raises(ValueError, match="fr"):
        dpsl_alphas(DPSLConfig(coef=1.0, language_prior={"fr": [0]}), 4, 2, ["de"])
    # per-direction matching: decoder tokens of "ja" drawn from ja's prior fit it, not the symmetric one
    probs = torch.distributions.Dirichlet(by_lang[1]).sample((3000,))
    lang = torch.ones(3000, dtype=torch.long)
    r = MaskedRouting(probs.log(), probs.topk(2).indices, 4, lang, decoder=True)
    with_prior = ROUTER_LOSSES["dpsl"](r, alpha=base, alpha_by_lang=by_lang)
    without = ROUTER_LOSSES["dpsl"](r, alpha=base)
    assert float(with_prior) < 0.2 * float(without)


def test_moe_loss_reads_directions_from_the_prompt_and_honours_warmup():
    cfg = MoEConfig(num_experts=4, top_k=2, balance_coef=0.0, z_coef=0.0,
                    dpsl=DPSLConfig(coef=1.0, language_prior="auto", warmup_steps=3))
    loss = MoELoss.from_config(cfg, ["de", "ja"], lang_token_ids=[50, 51])
    moe = MoEBlock(16, 32, cfg)
    model = torch.nn.Module()
    model.decoder = torch.nn.Module()
    model.decoder.layers = torch.nn.ModuleList([torch.nn.Module()])
    model.decoder.layers[0].mlp = moe
    batch = {"decoder_input_ids": torch.tensor([[1, 51, 9, 9], [1, 50, 9, 9], [1, 7, 9, 9]]),
             "decoder_attention_mask": torch.ones(3, 4)}
    _, dec, lang = token_masks(batch, loss.lang_token_ids, torch.device("cpu"))
    assert lang.tolist() == [1, 0, -1]
    routing = {"decoder.layers.0": moe(torch.randn(3, 4, 16))[1]}
    assert flat_for(routing["decoder.layers.0"], dec, lang)[1].tolist() == [1] * 4 + [0] * 4 + [-1] * 4
    with loss.before_step(model, batch, step=0):
        assert "router_dpsl" in loss.loss(model, batch, None, routing)
    with loss.before_step(model, batch, step=3):
        assert "router_dpsl" not in loss.loss(model, batch, None, routing)


# -- SD-MoE --------------------------------------------------------------------------------------


def sd_step(rank: int, optimizer: str, strategy: str = "random", exact: bool = True):
    """One trainer-like step on an upcycled tiny model: (weights before, after, decoupler)."""
    from helpers import batches

    model, _, _ = upcycled(strategy, **({"energy": 0.5} if strategy == "spri" else {}))
    sd = SpectralDecoupler(SDMoEConfig(rank=rank, period=1, exact_update=exact))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.1) if optimizer == "sgd" else torch.optim.AdamW(params, lr=1e-2)
    before = {id(p): p.detach().clone() for p in model.parameters()}
    b = batches(1)[0]
    out = model(input_features=b["input_features"], decoder_input_ids=b["decoder_input_ids"])
    out.logits.float().logsumexp(-1).mean().backward()
    sd.after_backward(model, 0)
    opt.step()
    sd.after_step(model, 0)
    return model, before, sd


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
@pytest.mark.parametrize("strategy", ["random", "spri"])
def test_sd_update_splits_into_a_shared_part_and_orthogonal_tails(optimizer, strategy):
    model, before, sd = sd_step(rank=4, optimizer=optimizer, strategy=strategy)
    checked = 0
    for key, p in sd.targets(model):
        v = sd.bases[key]
        assert v.shape[1] == 4
        torch.testing.assert_close(v.t() @ v, torch.eye(4), atol=1e-5, rtol=0)
        delta = p.detach() - before[id(p)]
        shared = (delta @ v) @ v.t()
        tail = delta - shared
        torch.testing.assert_close(shared, shared[:1].expand_as(shared), atol=1e-6, rtol=0)
        assert float((tail @ v).abs().max()) < 1e-5
        assert float(tail.abs().max()) > 0 and float(shared.abs().max()) > 0
        checked += 1
    assert checked >= 4


def test_sd_rank_zero_is_ordinary_training():
    torch.manual_seed(0)
    a, _, _ = sd_step(rank=0, optimizer="adamw")
    torch.manual_seed(0)
    model, _, _ = upcycled("random")
    from helpers import batches

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    b = batches(1)[0]
    model(input_features=b["input_features"], decoder_input_ids=b["decoder_input_ids"]).logits.float() \
        .logsumexp(-1).mean().backward()
    opt.step()
    for (n, p), (_, q) in zip(a.named_parameters(), model.named_parameters()):
        assert torch.equal(p, q), n


def test_sd_logs_overhead():
    _, _, sd = sd_step(rank=2, optimizer="sgd")
    m = sd.metrics(None)
    assert m["sd_moe/overhead_ms"] > 0 and sd.total_s > 0
    assert sd.metrics(None) == {}  # the window resets


def test_router_logits_stay_fp32_under_bf16_autocast():
    moe = distill_moe()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, routing = moe(torch.randn(1, 4, 16))
    assert routing.logits.dtype == torch.float32


def test_gradient_checkpointing_with_self_distillation_on_padded_batches(tmp_path):
    """Checkpointing re-runs the forward in backward: the padding masks must still be set then."""
    from helpers import batches

    from src.training.config import StageConfig, TrainerConfig
    from src.training.trainer import Trainer

    cfg = MoEConfig(num_experts=4, top_k=2, self_distill=SelfDistillConfig(coef=1.0, threshold=1.0))
    model, _, _ = upcycled("vanilla", moe=cfg)
    data = batches(2)
    for b in data:
        b["feature_lengths"] = torch.tensor([64, 30])  # the second clip is padding after 30 frames
        b["decoder_attention_mask"][1, 3:] = 0
    tcfg = TrainerConfig(stages=[StageConfig(steps=2, lr=1e-3)], progress=False, gradient_checkpointing=True,
                         log_every=1)
    history = Trainer(model, None, tcfg, tmp_path, data, extensions=[MoELoss.from_config(cfg)]).fit()
    assert len(history[0]["losses"]) == 2
