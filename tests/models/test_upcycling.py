"""Upcycling strategies: the invariants each method implies, the report, and checkpoint round trips."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import MOE, batches, calib_batch, tiny_whisper, ucfg, upcycled, upcycling

from src.models.backbone import load_whisper, set_pad_to_30s
from src.models.config import MoEConfig
from src.models.router_losses import MoELoss
from src.models.upcycling import STRATEGIES
from src.models.upcycling.apply import block_deviation, search_knob, upcycle_model
from src.models.upcycling.calibration import teacher_forced
from src.models.upcycling.spri import ResidualSpectrum, partition_components, principal_rank, spri_split
from src.models.whisper_moe import moe_blocks
from src.training.checkpoint import save_checkpoint
from src.training.config import StageConfig, TrainerConfig
from src.training.trainer import Trainer
from src.utils.errors import UserError


def test_vanilla_equals_dense_ffn_at_init_in_encoder_and_decoder():
    model = tiny_whisper()
    set_pad_to_30s(model, False)
    batch = calib_batch()
    with torch.no_grad():
        ref = model(input_features=batch["input_features"], decoder_input_ids=batch["decoder_input_ids"]).logits
    report = upcycle_model(model, MOE, ucfg("vanilla"), seed=0, calib=[batch], progress=False)
    names = [r["name"] for r in report["layers"]]
    assert names == ["encoder.layers.0", "encoder.layers.1", "decoder.layers.0", "decoder.layers.1"]
    assert all(r["output_deviation"] < 1e-6 for r in report["layers"])
    assert all(r["expert_cosine_mean"] == pytest.approx(1.0, abs=1e-6) for r in report["layers"])
    assert all(r["subspace_overlap"] == pytest.approx(1.0, abs=1e-4) for r in report["layers"])
    assert all(r["reconstruction_error"] is None for r in report["layers"])
    with torch.no_grad():
        out = model.eval()(input_features=batch["input_features"], decoder_input_ids=batch["decoder_input_ids"]).logits
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mode", [True, False])
def test_upcycling_leaves_every_module_in_the_mode_it_found_it(mode):
    model = tiny_whisper().train(mode)
    set_pad_to_30s(model, False)
    upcycle_model(model, MOE, ucfg("spri"), seed=0, calib=[calib_batch()], progress=False)  # report reads eval
    assert {m.training for m in model.modules()} == {mode}
    block = dict(moe_blocks(model))["decoder.layers.1"]
    block.train(mode)
    d_ff, d_model = block.experts.w1.shape[1:]
    dense = torch.nn.Linear(d_model, d_ff), torch.nn.Linear(d_ff, d_model)
    row = block_deviation(block, *dense, torch.randn(6, d_model))  # the report's per-block reading
    assert {m.training for m in block.modules()} == {mode} and 0 <= row["router_top1_mean"] <= 1


def test_upcycling_an_upcycled_checkpoint_stops_with_one_line(tmp_path):
    from src.data.text import train_toy_tokenizer

    model, _, _ = upcycled("vanilla")
    save_checkpoint(model, train_toy_tokenizer(["hello world"] * 5, tmp_path / "tok", vocab_size=300), tmp_path / "moe")
    reloaded, _ = load_whisper(tmp_path / "moe")
    n = len(moe_blocks(reloaded))
    with pytest.raises(UserError, match=rf"already has {n} MoE layer\(s\) \(encoder.layers.\d, ...\): it is an upc"):
        upcycle_model(reloaded, MOE, ucfg("spri"), seed=0, calib=[calib_batch()], progress=False)


def test_where_and_every_select_layers():
    _, _, rep = upcycled("vanilla", MoEConfig(num_experts=2, top_k=1, where="decoder", every=2))
    assert [r["name"] for r in rep["layers"]] == ["decoder.layers.1"]


def test_report_counts_parameters():
    model, dense, rep = upcycled("vanilla")
    assert rep["dense_parameters"] == sum(p.numel() for p in dense.values())
    per_layer_ffn = 64 * 32 + 64 + 32 * 64 + 32
    router = 32 * 4
    assert rep["total_parameters"] == rep["dense_parameters"] + 4 * (3 * per_layer_ffn + router)
    assert rep["active_parameters"] == rep["dense_parameters"] + 4 * (per_layer_ffn + router)
    assert set(rep) >= {"strategy", "num_experts", "top_k", "dense_parameters", "total_parameters",
                        "active_parameters", "layers"}


def test_spri_reconstructs_and_partitions():
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(64, 32, generator=gen)
    p, r, parts = spri_split(torch.linalg.svd(w.double(), full_matrices=False), 5, 4, "interleaved", gen)
    torch.testing.assert_close(p + r.sum(0), w.double(), atol=1e-5, rtol=1e-5)
    flat = sorted(c for part in parts for c in part)
    assert flat == list(range(5, 32))  # disjoint and covering
    assert parts[0][:3] == [8, 12, 16] and parts[1][:3] == [5, 9, 13]  # interleaved: component c -> expert c mod 4
    energy = torch.stack([ri.pow(2).sum() for ri in r])
    assert float(energy.max() / energy.min()) < 1.6  # balanced energy across experts
    contiguous = partition_components(5, 32, 4, "contiguous", gen)
    assert all(b[0] == a[-1] + 1 for a, b in zip(contiguous, contiguous[1:]))
    contig_r = torch.stack([torch.linalg.svd(w.double())[1][c].pow(2).sum() for c in contiguous])
    assert float(contig_r.max() / contig_r.min()) > float(energy.max() / energy.min())  # bands are unbalanced
    rand = partition_components(5, 32, 4, "random", torch.Generator().manual_seed(1))
    assert sorted(c for part in rand for c in part) == list(range(5, 32)) and rand != partition_components(
        5, 32, 4, "interleaved", gen)


def test_spri_rank_and_energy_select_documented_components():
    s = torch.tensor([4.0, 3.0, 2.0, 1.0])  # squared: 16, 9, 4, 1 of 30
    assert principal_rank(s, 3, None) == 3
    assert principal_rank(s, None, 16 / 30) == 1
    assert principal_rank(s, None, 0.6) == 2  # 25/30 = 0.83 >= 0.6 > 16/30
    assert principal_rank(s, None, 29 / 30) == 3
    assert principal_rank(s, None, 1.0) == 4
    with pytest.raises(ValueError, match="upcycle.rank=9"):
        principal_rank(s, 9, None)


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_spri_stores_plain_experts_that_rebuild_the_dense_weight(scale):
    model, dense, result = upcycling("spri", energy=0.5, residual_scale=scale)
    rep, (ext,) = result.report, result.extensions
    vanilla, _, _ = upcycled("vanilla")
    assert {n: p.shape for n, p in model.named_parameters()} == {n: p.shape for n, p in vanilla.named_parameters()}
    assert {n for n, _ in model.named_buffers()} == {n for n, _ in vanilla.named_buffers()}  # the subspaces: ext's
    assert all(r["reconstruction_error"] < 1e-6 for r in rep["layers"])
    assert all(r["output_deviation"] > 1e-3 for r in rep["layers"])  # experts differ from dense at init
    assert all(r["expert_cosine_mean"] < 1.0 - 1e-4 for r in rep["layers"])
    bank = dict(moe_blocks(model))["encoder.layers.0"].experts
    w = dense["model.encoder.layers.0.fc1.weight"]
    u = ext.subspaces["encoder.layers.0.w1"][0]  # P = U_r U_r^T W
    p = u @ (u.t() @ w)
    # sum_e W_e = E P + scale * sum_e R_e = E P + scale (W - P)
    torch.testing.assert_close(bank.w1.sum(0), 4 * p + scale * (w - p), atol=1e-5, rtol=1e-5)


def test_spri_energy_auto_needs_labelled_calibration_only_for_the_ce_ratio():
    with pytest.raises(ValueError, match="auto_measure=ce_ratio needs labelled calibration batches"):
        upcycled("spri", auto_measure="ce_ratio")
    _, _, rep = upcycled("spri")  # the KL budget reads the decoder mask: no labels needed
    assert rep["auto"]["measure"] == "kl" and rep["auto"]["budget_met"]
    assert rep["init_loss"]["kl"] <= 0.05 + 1e-9 and rep["init_loss"]["ratio"] is None


@pytest.mark.parametrize("how", ["interleaved", "random"])
def test_spri_partition_is_stable_in_the_rank(how):
    """A larger rank only moves components into P: every other component keeps its expert."""
    owner = {}
    for first in range(0, 20):
        parts = partition_components(first, 24, 4, how, torch.Generator().manual_seed(3))
        assert sorted(c for part in parts for c in part) == list(range(first, 24))
        for e, part in enumerate(parts):
            for c in part:
                assert owner.setdefault(c, e) == e, (first, c)


def test_spri_experts_approach_the_dense_weight_monotonically_in_the_rank():
    """With a rank-stable partition, ||W_e - W|| = ||sum of the other experts' residuals|| can only fall as the
    rank rises (component by component), for every expert; the old re-dealt partition broke this."""
    w = torch.randn(48, 24, generator=torch.Generator().manual_seed(0)).double()
    svd = torch.linalg.svd(w, full_matrices=False)
    previous = None
    for r in range(0, 25):
        p, res, _ = spri_split(svd, r, 4, "interleaved", torch.Generator().manual_seed(0))
        dist = torch.stack([(p + res[e] - w).norm() for e in range(4)])
        if previous is not None:
            assert bool((dist <= previous + 1e-9).all()), r
        previous = dist
    assert float(previous.max()) < 1e-9  # full rank: every expert is W


def test_search_knob_evaluates_its_end_point_and_counts_nan_as_over_budget():
    seen = []

    def never(value: float) -> float:
        seen.append(value)
        return float("nan")

    value, trace, met = search_knob(never, budget=0.05)
    assert value == 1.0 and not met and seen[-1] == 1.0 and len(trace) == 11  # 1 was measured, not assumed
    value, trace, met = search_knob(lambda v: 1.0 - v, budget=0.25)
    assert met and value == pytest.approx(0.75, abs=1 / 1024) and 1.0 - value <= 0.25 and len(trace) == 10


def test_unmet_budget_and_full_rank_are_warned_in_log_and_report(monkeypatch, caplog):
    import src.models.upcycling.apply as up

    real = up.teacher_forced
    calls = []

    def nan_during_search(model, batches, reference=None, keep_logprobs=False):
        out = real(model, batches, reference, keep_logprobs)
        if reference is not None:  # the search's 11 passes (and the final init_loss) compare to the dense model
            calls.append(1)
            if len(calls) <= 11:
                out.kl = float("nan")
        return out

    monkeypatch.setattr(up, "teacher_forced", nan_during_search)
    with caplog.at_level("WARNING"):
        _, _, rep = upcycled("spri")
    assert rep["auto"]["value"] == 1.0 and rep["auto"]["budget_met"] is False
    assert any("no value in [0, 1] keeps kl within 0.05" in w for w in rep["warnings"])
    assert any("rank = full" in w for w in rep["warnings"])  # energy 1: every matrix keeps its whole spectrum
    assert "no value in [0, 1]" in caplog.text and "rank = full" in caplog.text
    # every non-finite search point is said, not only the outcome (issue 33: 6 of 10 NaN went unmentioned)
    assert len(rep["auto"]["non_finite"]) == 11 and rep["auto"]["non_finite"][-1] == 1.0
    assert any("11 of 11 search points gave a non-finite kl" in w for w in rep["warnings"])


def test_some_nan_search_points_are_warned_even_when_the_budget_is_met(monkeypatch):
    import src.models.upcycling.apply as up

    real, calls = up.teacher_forced, []

    def nan_at_some_points(model, batches, reference=None, keep_logprobs=False):
        out = real(model, batches, reference, keep_logprobs)
        if reference is not None:
            calls.append(1)
            if len(calls) in (1, 3):  # the first and third bisection points
                out.kl = float("nan")
        return out

    monkeypatch.setattr(up, "teacher_forced", nan_at_some_points)
    _, _, rep = upcycled("spri")
    trace = rep["auto"]["trace"]
    assert rep["auto"]["non_finite"] == [trace[0][0], trace[2][0]]
    assert any("2 of 10 search points gave a non-finite kl" in w for w in rep["warnings"])


def test_the_python_api_checks_the_config_and_the_kl_is_never_negative():
    """upcycle_model skipped ucfg.check(): residual_scale 0 or -1 were accepted from Python. The KL of a model
    against its own distributions is 0 (float64, renormalised), never slightly negative."""
    model = tiny_whisper()
    set_pad_to_30s(model, False)
    for bad in (0.0, -1.0):
        with pytest.raises(UserError, match="residual_scale must be > 0"):
            upcycle_model(model, MOE, ucfg("spri", residual_scale=bad), seed=0, calib=[calib_batch()],
                          progress=False)
    batch = [calib_batch()]
    own = teacher_forced(model, batch, keep_logprobs=True).logprobs
    kl = teacher_forced(model, batch, own).kl
    assert kl == 0.0 or 0.0 < kl < 1e-9


def test_init_kl_is_zero_for_vanilla_and_matches_a_direct_computation():
    _, _, van = upcycled("vanilla")
    model, weights, drop = upcycled("drop")
    # vanilla: 0 up to float32 logit noise, never negative (float64 KL); drop moves this near-uniform tiny
    # model's predictions ~100x more
    assert 0.0 <= van["init_loss"]["kl"] < 1e-7
    assert drop["init_loss"]["kl"] > max(1e-6, 50 * van["init_loss"]["kl"])
    batch = calib_batch()
    dense = tiny_whisper()
    dense.load_state_dict(weights, strict=False)  # proj_out is tied to the embeddings
    set_pad_to_30s(dense, False)
    ref = teacher_forced(dense, [batch], keep_logprobs=True).logprobs
    with torch.no_grad():
        logits = model.eval()(input_features=batch["input_features"], decoder_input_ids=batch["decoder_input_ids"],
                              decoder_attention_mask=batch["decoder_attention_mask"]).logits
    mask = batch["decoder_attention_mask"].bool()
    ref64 = ref[0].double() - ref[0].double().logsumexp(-1, keepdim=True)  # the measure's float64 (issue 33)
    direct = torch.nn.functional.kl_div(logits[mask].double().log_softmax(-1), ref64, log_target=True,
                                        reduction="batchmean")
    measured = teacher_forced(model, [batch], ref)
    assert measured.kl == pytest.approx(float(direct), rel=1e-5)
    assert measured.ce is None  # no labels, no cross-entropy
    labels = batch["decoder_input_ids"].roll(-1, 1).masked_fill(~mask, -100)
    labelled = teacher_forced(model, [{**batch, "labels": labels}], ref)  # the same pass gives both
    ce = torch.nn.functional.cross_entropy(logits[mask], labels[mask])
    assert labelled.ce == pytest.approx(float(ce), rel=1e-5) and labelled.kl == pytest.approx(measured.kl, rel=1e-6)
    with pytest.raises(ValueError, match="strict|shorter|longer"):  # a reference per batch, no fewer
        teacher_forced(model, [batch, batch], ref)


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_spri_refuses_a_non_positive_residual_scale(scale):
    with pytest.raises(ValueError, match="upcycle.residual_scale must be > 0"):
        ucfg("spri", residual_scale=scale).check()


@pytest.mark.parametrize("strategy", ["random", "drop"])
def test_random_and_drop_change_the_documented_fraction(strategy):
    model, dense, rep = upcycled(strategy, ratio=0.25)
    w1_dense = dense["model.decoder.layers.1.fc1.weight"]
    b1_dense = dense["model.decoder.layers.1.fc1.bias"]
    w2_dense = dense["model.decoder.layers.1.fc2.weight"]
    bank = dict(moe_blocks(model))["decoder.layers.1"].experts
    changed_sets = []
    for e in range(4):
        rows = (bank.w1[e] != w1_dense).any(1)
        cols = (bank.w2[e] != w2_dense).any(0)
        assert int(rows.sum()) == 16  # 25% of 64 neurons
        assert torch.equal(rows, cols) and torch.equal(rows, bank.b1[e] != b1_dense)  # shared indices
        torch.testing.assert_close(bank.w1[e][~rows], w1_dense[~rows], rtol=0, atol=0)  # the rest: exact copies
        changed_sets.append(rows)
    assert not all(torch.equal(changed_sets[0], s) for s in changed_sets[1:])  # experts differ
    assert torch.equal(bank.b2, dense["model.decoder.layers.1.fc2.bias"].expand_as(bank.b2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (on CPU the equivalence trace pins the values)")
@pytest.mark.parametrize("strategy", ["random", "drop", "vanilla"])
def test_noise_strategies_upcycle_a_model_already_on_the_gpu_to_the_cpu_values(strategy):
    """The noise is drawn from a CPU generator and moved: upcycling on a GPU gives the CPU's experts."""
    cpu, _, _ = upcycled(strategy)
    model, _, _ = upcycled(strategy, device="cuda")
    for (name, a), (_, b) in zip(cpu.named_parameters(), model.named_parameters(), strict=True):
        torch.testing.assert_close(b.cpu(), a, rtol=1e-5, atol=1e-6, msg=name)


def test_drop_reinitialises_from_the_slice_statistics():
    model = tiny_whisper()
    layer = model.model.decoder.layers[0]
    with torch.no_grad():  # a dense weight with a clear mean and spread, so a wrong source is visible
        layer.fc1.weight.normal_(0.3, 0.05)
        layer.fc1.weight[:32] += 1.0
    w1 = layer.fc1.weight.detach().clone()
    upcycle_model(model, MoEConfig(num_experts=8, top_k=2), ucfg("drop", ratio=0.5), seed=0, progress=False)
    bank = dict(moe_blocks(model))["decoder.layers.0"].experts
    for e in range(8):
        rows = (bank.w1[e] != w1).any(1)
        new, old = bank.w1[e][rows], w1[rows]
        assert float(new.mean()) == pytest.approx(float(old.mean()), abs=0.06)
        assert float(new.std()) == pytest.approx(float(old.std()), rel=0.1)


def test_drop_per_matrix_indices_option():
    model, dense, _ = upcycled("drop", ratio=0.25, shared_indices=False)
    bank = dict(moe_blocks(model))["encoder.layers.0"].experts
    rows = (bank.w1[0] != dense["model.encoder.layers.0.fc1.weight"]).any(1)
    cols = (bank.w2[0] != dense["model.encoder.layers.0.fc2.weight"]).any(0)
    assert int(rows.sum()) == int(cols.sum()) == 16 and not torch.equal(rows, cols)


def reloaded_with_same_logits(model, ckpt):
    """The checkpoint loaded back; asserts its logits equal ``model``'s to the bit."""
    loaded, _ = load_whisper(ckpt, pad_to_30s=False)
    batch = calib_batch(1)
    with torch.no_grad():
        a = model.eval()(input_features=batch["input_features"], decoder_input_ids=batch["decoder_input_ids"]).logits
        b = loaded.eval()(input_features=batch["input_features"], decoder_input_ids=batch["decoder_input_ids"]).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    return loaded


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_checkpoint_round_trip_gives_same_logits(strategy, tmp_path):
    from src.data.text import train_toy_tokenizer

    model, _, rep = upcycled(strategy, **({"energy": 0.5} if strategy == "spri" else {}))
    tok = train_toy_tokenizer(["hello world"] * 5, tmp_path / "tok", vocab_size=300)
    save_checkpoint(model, tok, tmp_path / "ckpt")
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert (config.get("moe") is None) == (strategy == "dense")
    if strategy != "dense":
        assert config["upcycle"]["strategy"] == strategy and config["moe"]["num_experts"] == 4
    loaded = reloaded_with_same_logits(model, tmp_path / "ckpt")
    assert len(moe_blocks(loaded)) == len(rep["layers"])


def test_a_checkpoint_from_before_the_moe_block_had_its_slot_still_loads(tmp_path):
    """MoE weights saved as `...fc1.router.weight` (the block installed inside fc1, before issue 16) load
    into today's `...mlp.router.weight` and give the same logits."""
    from safetensors.torch import load_file, save_file

    from src.data.text import train_toy_tokenizer

    model, _, _ = upcycled("vanilla", MoEConfig(num_experts=4, top_k=2, shared_expert=True))
    tok = train_toy_tokenizer(["hello world"] * 5, tmp_path / "tok", vocab_size=300)
    save_checkpoint(model, tok, tmp_path / "ckpt")
    weights = tmp_path / "ckpt" / "model.safetensors"
    state = load_file(str(weights))
    old = {k.replace(".mlp.", ".fc1."): v for k, v in state.items()}
    assert sum(".fc1.router." in k or ".fc1.shared_expert." in k for k in old) == 4 * 5  # per layer: router, 2 x (w, b)
    save_file(old, str(weights), metadata={"format": "pt"})
    reloaded_with_same_logits(model, tmp_path / "ckpt")


def spri_stage1(tmp_path, update: str, steps: int = 3):
    """(model, weights before) after `steps` AdamW steps of SPRI's stage 1 with ``update``."""
    model, _, result = upcycling("spri", energy=0.5, stage1_update=update)
    (ext,) = result.extensions
    assert ext.mode == update
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainerConfig(stages=[StageConfig(name="stage1", steps=steps, lr=1e-2, trainable=["residual", "router"])],
                        progress=False)
    data = batches(steps)
    for b in data:
        b["feature_lengths"] = torch.tensor([64, 64])
    Trainer(model, None, cfg, tmp_path, data, extensions=[MoELoss({"balance": 0.01, "z": 0.001}), ext]).fit()
    return model, before, ext


def principal_leak(model, before, ext: ResidualSpectrum) -> tuple[float, float]:
    """(largest |U_r^T dW_e| + |dW_e V_r| relative to |dW_e|, smallest |dW_e|) over all SPRI expert matrices."""
    leak, smallest = 0.0, float("inf")
    for name, moe in moe_blocks(model):
        bank = moe.experts
        for w in ("w1", "w2"):
            delta = (getattr(bank, w) - before[f"model.{name}.mlp.experts.{w}"]).double()
            u, v = (t.double() for t in ext.subspaces[f"{name}.{w}"])
            for e in range(delta.shape[0]):
                size = float(delta[e].norm())
                smallest = min(smallest, size)
                leak = max(leak, float((u.t() @ delta[e]).norm() + (delta[e] @ v).norm()) / size)
    return leak, smallest


def test_spri_stage1_moves_only_the_residual_spectrum_and_the_routers(tmp_path):
    model, before, ext = spri_stage1(tmp_path, "projected")
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(n.endswith((".experts.w1", ".experts.w2")) or ".router." in n for n in changed)
    assert any(".router." in n for n in changed)
    leak, smallest = principal_leak(model, before, ext)
    assert smallest > 1e-3  # the experts did move (lr 1e-2, 3 AdamW steps)
    assert leak < 1e-5  # ... and only outside P's left and right singular subspaces (float32 tolerance)


def test_each_stage_reports_how_far_it_moved_the_experts_relative_to_the_residual(tmp_path):
    """stage_end's movement = ||W_e(end) - W_e(start)|| / ||R_e||, R_e = W_e - U U^T W_e V V^T at init."""
    model, _, result = upcycling("spri", energy=0.5)
    (ext,) = result.extensions
    bank = dict(moe_blocks(model))["decoder.layers.1"].experts
    w0 = bank.w1.detach().clone()
    u, v = ext.subspaces["decoder.layers.1.w1"]
    residual = (w0 - u @ (u.t() @ w0 @ v) @ v.t()).flatten(1).norm(dim=1)
    stages = [StageConfig(name="stage1", steps=2, lr=1e-2, trainable=["residual", "router"]),
              StageConfig(name="stage2", steps=2, lr=1e-3, trainable=["all"])]
    data = batches(4)
    for b in data:
        b["feature_lengths"] = torch.tensor([64, 64])
    history = Trainer(model, None, TrainerConfig(stages=stages, progress=False), tmp_path, data,
                      extensions=[ext]).fit()
    moved = [h["expert_movement"] for h in history]
    assert all(m["vs_residual_mean"] > 0 and m["vs_residual_max"] >= m["vs_residual_mean"] for m in moved)
    torch.testing.assert_close(ext.residual_norm["decoder.layers.1.w1"], residual)  # the init residual, kept
    # over both stages this expert moved by at most the sum of the stages' largest relative moves
    total = float(((bank.w1.detach() - w0).flatten(1).norm(dim=1) / residual).max())
    assert 0 < total <= moved[0]["vs_residual_max"] + moved[1]["vs_residual_max"] + 1e-6


def test_spri_stage1_full_update_leaks_into_the_principal_subspace(tmp_path):
    model, before, ext = spri_stage1(tmp_path / "full", "full")
    leak, smallest = principal_leak(model, before, ext)
    assert smallest > 1e-3 and leak > 0.1  # without the projection AdamW moves the principal part too


def test_same_gradient_moves_spri_and_vanilla_experts_alike():
    """Stage 2: one AdamW step from the same gradient moves an SPRI and a vanilla expert weight equally."""
    steps = []
    for strategy, kw in (("spri", {"energy": 0.5}), ("vanilla", {})):
        model, _, _ = upcycled(strategy, **kw)
        bank = dict(moe_blocks(model))["decoder.layers.1"].experts
        opt = torch.optim.AdamW([bank.w1], lr=1e-3)
        before = bank.w1.detach().clone()
        bank.w1.grad = torch.linspace(-1, 1, bank.w1.numel()).reshape(bank.w1.shape)
        opt.step()
        steps.append(float((bank.w1 - before - (-1e-3 * 0.01 * before)).norm()))  # minus the decay term
    assert steps[0] == pytest.approx(steps[1], rel=1e-4)


def test_unknown_strategy_knob_is_an_error():
    with pytest.raises(Exception, match="rnak"):
        ucfg("spri", rnak=3)
    with pytest.raises(ValueError, match="unknown strategy 'sprii'"):
        ucfg("sprii")


def test_report_subspaces_of_large_matrices_are_exact_enough_and_leave_the_global_generator_alone():
    from src.models.upcycling.diagnostics import top_right_singular

    g = torch.Generator().manual_seed(0)
    w = torch.randn(1024, 512, generator=g) @ torch.diag(torch.linspace(3.0, 0.1, 512))  # decaying spectrum
    state = torch.get_rng_state()
    fast = top_right_singular(w, 16)  # d 512: the randomized path
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(top_right_singular(w, 16), fast)  # its own seeded stream: the same every time
    exact = torch.linalg.svd(w, full_matrices=False)[2][:16].t()
    overlap = float((exact.t() @ fast).norm() ** 2 / 16)
    assert overlap > 0.98  # (q = r + 10, 4 iterations: 0.70 on this flat spectrum)
