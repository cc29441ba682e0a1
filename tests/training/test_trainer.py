"""The training loop: stages select parameter groups, checkpoints per stage, exact resume,
gradient accumulation, and the offline wandb logger."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import Crashing, batches, tiny_whisper

from src.training.checkpoint import read_state
from src.training.config import StageConfig, TrainerConfig
from src.training.loggers import ConsoleLogger, WandbLogger
from src.training.optim import lr_lambda
from src.training.trainer import Trainer
from src.utils.extension import TrainerExtension


def model(dropout: float = 0.0):
    from src.models.backbone import set_pad_to_30s

    m = tiny_whisper()
    m.config.dropout = dropout
    for mod in m.modules():  # the layers read their own copy of the rate
        if hasattr(mod, "dropout") and isinstance(mod.dropout, float):
            mod.dropout = dropout
    set_pad_to_30s(m, False)
    return m


def test_stages_train_only_their_groups_and_checkpoint(tmp_path):
    m = model()
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    cfg = TrainerConfig(stages=[StageConfig(name="attn", steps=3, lr=1e-2, trainable=["attention"]),
                                StageConfig(name="rest", steps=2, lr=1e-2, trainable=["all"])],
                        progress=False, log_every=1)
    t = Trainer(m, None, cfg, tmp_path, batches(), batches(2, seed=1))
    t.cfg.stages = t.cfg.stages[:1]
    hist = t.fit()
    changed = {n for n, p in m.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("attn" in n for n in changed)
    assert hist[0]["trainable"] == sum(p.numel() for n, p in m.named_parameters() if "attn." in n
                                       or "attn_layer_norm" in n)
    assert read_state(tmp_path / "checkpoints" / "attn")["complete"]
    assert hist[0]["dev_loss"] is not None and len(hist[0]["losses"]) == 3


def crash_and_resume(tmp_path, stages, data, crash_after, dropout=0.1, damage=None, logger=None, keep=2):
    """Train until the loader dies after ``crash_after`` batches, optionally damage the checkpoints, resume
    with other initial weights; returns the resumed model."""
    m1 = model(dropout)
    torch.manual_seed(0)
    cfg = TrainerConfig(stages=stages, progress=False, save_every=2, log_every=1, keep_checkpoints=keep)
    with pytest.raises(KeyboardInterrupt):
        Trainer(m1, None, cfg, tmp_path / "run", Crashing(data, crash_after), logger=logger).fit()
    if damage is not None:
        damage(tmp_path / "run" / "checkpoints")
    m2 = model(dropout)  # other weights: everything must come from the checkpoints
    torch.nn.init.normal_(m2.model.decoder.embed_tokens.weight)
    torch.manual_seed(123)  # and another random stream: the checkpoint's must be restored
    cfg = TrainerConfig(stages=stages, progress=False, save_every=2, log_every=1, resume=True)
    Trainer(m2, None, cfg, tmp_path / "run", data, logger=logger).fit()
    return m2


def reference(tmp_path, stages, data, init, dropout=0.1, logger=None):
    ref = model(dropout)
    ref.load_state_dict(init)
    torch.manual_seed(0)
    Trainer(ref, None, TrainerConfig(stages=stages, progress=False, log_every=1), tmp_path / "ref", data,
            logger=logger).fit()
    return ref


TWO_STAGES = [StageConfig(name="a", steps=4, lr=5e-3), StageConfig(name="b", steps=4, lr=5e-3, schedule="cosine")]


def assert_same_weights(a, b):
    for (n, p), (_, q) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(p, q), n


@pytest.mark.parametrize("crash_after", [3, 6])  # mid stage a; mid stage b (after its step-2 save)
def test_resume_with_dropout_is_bit_identical_to_the_uninterrupted_run(tmp_path, crash_after):
    """Dropout 0.1 draws from the random-number states, which the checkpoints carry (torch, numpy, python)."""
    data = batches(3)  # 3 batches per epoch: resume must also continue the data order exactly
    init = {k: v.clone() for k, v in model().state_dict().items()}
    ref = reference(tmp_path, TWO_STAGES, data, init)
    m2 = crash_and_resume(tmp_path, TWO_STAGES, data, crash_after, damage=None)
    assert_same_weights(ref, m2)
    assert read_state(tmp_path / "run" / "checkpoints" / "b")["global_step"] == 8


def test_without_the_saved_random_states_dropout_differs(tmp_path):
    """The control: the same crash with the RNG file deleted resumes, warns, and ends elsewhere."""
    from src.training.checkpoint import RNG_FILE

    data = batches(3)
    init = {k: v.clone() for k, v in model().state_dict().items()}
    ref = reference(tmp_path, TWO_STAGES, data, init)

    def drop_rng(ckpts):  # a valid mid-stage checkpoint needs the file: keep an empty-but-valid stand-in
        for d in ckpts.glob("step-*"):
            torch.save({"ranks": [None, None]}, d / RNG_FILE)  # saved by another world size: not restored

    m2 = crash_and_resume(tmp_path, TWO_STAGES, data, 3, damage=drop_rng)
    assert any(not torch.equal(p, q) for p, q in zip(ref.parameters(), m2.parameters()))


def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(tmp_path, caplog):
    """Truncated weights, a missing optimizer file or a missing COMPLETE marker: the next older one is used,
    and the run still ends where the uninterrupted one does."""
    from src.training.checkpoint import step_dirs

    stages = [StageConfig(name="a", steps=8, lr=5e-3)]
    data = batches(3)
    init = {k: v.clone() for k, v in model().state_dict().items()}
    ref = reference(tmp_path, stages, data, init)
    damaged = {}

    def damage(ckpts):
        newest, older = step_dirs(ckpts)[:2]
        weights = newest / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
        (older / "optimizer.pt").unlink()  # the next one is unusable too: a fresh optimizer would be wrong
        damaged.update(newest=newest, older=older)

    with caplog.at_level("INFO"):
        m2 = crash_and_resume(tmp_path, stages, data, 7, damage=damage, keep=3)  # checkpoints at steps 2, 4, 6
    assert_same_weights(ref, m2)
    text = caplog.text
    assert f"skipping checkpoint {damaged['newest'].name}" in text and "model.safetensors: truncated" in text
    assert f"skipping checkpoint {damaged['older'].name}" in text and "optimizer.pt missing" in text
    assert "resuming at stage 1 step 2 (global step 2)" in text


def test_resume_with_nothing_to_resume_says_so_and_trains_from_the_start(tmp_path, caplog):
    m = model()
    cfg = TrainerConfig(stages=[StageConfig(name="s", steps=2)], progress=False, resume=True)
    with caplog.at_level("WARNING"):
        Trainer(m, None, cfg, tmp_path, batches(2)).fit()
    assert "holds no usable checkpoint: training from the beginning" in caplog.text
    assert read_state(tmp_path / "checkpoints" / "s")["global_step"] == 2


def test_resume_drops_the_replayed_metric_rows_and_keeps_the_last_k(tmp_path):
    data = batches(3)
    init = {k: v.clone() for k, v in model().state_dict().items()}
    ref_log, run_log = ConsoleLogger(log_every_to_console=False), ConsoleLogger(log_every_to_console=False)
    ref_log.start(tmp_path, {})
    (tmp_path / "run").mkdir()
    run_log.start(tmp_path / "run", {})
    reference(tmp_path, TWO_STAGES, data, init, logger=ref_log)
    seen = {}

    def look(ckpts):  # at the crash: the pointer names the newest step dir; stage a's went when a completed
        seen.update(latest=(ckpts / "latest").read_text().strip(), steps=[d.name for d in ckpts.glob("step-*")])

    crash_and_resume(tmp_path, TWO_STAGES, data, 7, logger=run_log, damage=look)  # died in step 7, saved at 6
    ref_log.finish()
    run_log.finish()

    def rows(path):
        return [{k: v for k, v in json.loads(line).items() if k != "tokens_per_s"}
                for line in path.read_text().splitlines()]

    assert rows(tmp_path / "run" / "metrics.jsonl") == rows(tmp_path / "metrics.jsonl")
    assert seen == {"latest": "step-00000006", "steps": ["step-00000006"]}
    ckpts = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["a", "b"]  # no step dirs, pointer, temp or old copies left


def test_grad_accumulation_equals_the_big_batch(tmp_path):
    small = batches(4, bs=2)
    big = [{k: (torch.cat([a[k], b[k]]) if torch.is_tensor(a[k]) else []) for k in a}
           for a, b in zip(small[::2], small[1::2])]
    torch.manual_seed(0)
    m1, m2 = model(), model()
    m2.load_state_dict(m1.state_dict())
    st = [StageConfig(name="s", steps=2, lr=1e-2, schedule="constant")]
    for m, accum, data, d in ((m1, 2, small, "a"), (m2, 1, big, "b")):
        cfg = TrainerConfig(stages=st, progress=False, grad_accum=accum, clip_norm=None)
        Trainer(m, None, cfg, tmp_path / d, data).fit()
    # Same number of label tokens per micro-batch, so the mean of means equals the big-batch mean.
    for (n, p), (_, q) in zip(m1.named_parameters(), m2.named_parameters()):
        torch.testing.assert_close(p, q, atol=2e-5, rtol=1e-4, msg=n)


def test_lr_schedules():
    lin = lr_lambda("linear", 10, 110)
    assert lin(0) == pytest.approx(0.1) and lin(9) == pytest.approx(1.0) and lin(110) == 0.0
    cos = lr_lambda("cosine", 0, 100)
    assert cos(50) == pytest.approx(0.5) and cos(100) == pytest.approx(0.0)
    assert lr_lambda("constant", 0, 5)(4) == 1.0


def test_console_and_offline_wandb_loggers(tmp_path):
    log = ConsoleLogger()
    log.start(tmp_path, {})
    log.log_metrics({"loss": torch.tensor(1.5)}, 3)
    log.finish()
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"step": 3, "loss": 1.5}
    wb = WandbLogger(mode="offline", project="t")
    wb.start(tmp_path, {"a": 1})
    wb.log_metrics({"loss": 0.5}, 1)
    wb.log_table("results", [{"dir": "de", "bleu": 1.0}])
    wb.finish()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))


def test_ctc_pretraining_loss_trains_head_and_encoder(tmp_path):
    from src.training.ctc import CTCAuxLoss

    m = model()
    data = batches(2)
    transcribe, translate = 61, 62
    for b in data:
        b["feature_lengths"] = torch.tensor([64, 50])
        b["decoder_input_ids"][:, 2] = torch.tensor([transcribe, translate])  # row 0 ASR, row 1 translation
    ctc = CTCAuxLoss(d_model=32, vocab_size=64, eot_id=0, transcribe_id=transcribe, weight=0.5)
    head_before = ctc.head.weight.detach().clone()
    conv_before = m.model.encoder.conv1.weight.detach().clone()
    t = Trainer(m, None, TrainerConfig(stages=[StageConfig(name="p", steps=2, lr=1e-2)], progress=False, log_every=1),
                tmp_path, data, extensions=[ctc])
    _, metrics = t._forward(data[0])
    assert torch.isfinite(metrics["loss/ctc"]) and metrics["loss/ctc"] > 0
    # translation rows never enter CTC (not monotonic in the audio): changing their labels changes nothing
    with torch.no_grad():
        out = m(input_features=data[0]["input_features"], decoder_input_ids=data[0]["decoder_input_ids"])
        base = ctc(m, data[0], out)["ctc"]
        other = dict(data[0], labels=data[0]["labels"].clone())
        other["labels"][1, :3] = torch.tensor([5, 6, 7])
        assert torch.equal(ctc(m, other, out)["ctc"], base)
        other["labels"][0, :3] = torch.tensor([5, 6, 7])
        assert not torch.equal(ctc(m, other, out)["ctc"], base)
        no_asr = dict(data[0], decoder_input_ids=data[0]["decoder_input_ids"].clone())
        no_asr["decoder_input_ids"][:, 2] = translate
        assert ctc(m, no_asr, out)["ctc"].item() == 0.0
    t.fit()
    assert not torch.equal(ctc.head.weight, head_before) and not torch.equal(m.model.encoder.conv1.weight, conv_before)
    assert not any(k.startswith("head") for k in m.state_dict())  # the head never enters the saved model


def test_batches_survive_epochs_of_different_length(tmp_path):
    """Bucketed epochs differ in batch count; the endless batch stream must neither hang nor skip."""
    from src.data.dataset import LengthBucketSampler

    lengths = [int(x) for x in torch.randint(10, 300, (97,), generator=torch.Generator().manual_seed(0))]
    sampler = LengthBucketSampler(lengths, max_frames=600, max_batch_size=8, seed=0, window=2)

    class Loader:
        batch_sampler = sampler

        def __iter__(self):
            for idx in sampler:
                yield {"idx": idx, "input_features": None, "skipped": []}

        def __len__(self):
            return len(sampler)

    counts = set()
    for e in range(6):
        sampler.set_epoch(e)
        counts.add(len(sampler))
    assert len(counts) > 1  # the premise: epochs have different numbers of batches
    sampler.set_epoch(0)
    epoch0 = len(sampler)
    t = Trainer(model(), None, TrainerConfig(stages=[StageConfig(steps=1)], progress=False), tmp_path, Loader())
    gen = t._batches()
    seen = [next(gen)["idx"] for _ in range(4 * epoch0)]
    assert t.progress.epoch >= 3
    assert sorted(i for b in seen[:epoch0] for i in b) == list(range(97))  # epoch 0 covered exactly once


def test_gradient_checkpointing_trains_the_same(tmp_path):
    weights = []
    for gc in (False, True):
        torch.manual_seed(0)
        m = model()
        cfg = TrainerConfig(stages=[StageConfig(steps=2, lr=1e-2)], progress=False, gradient_checkpointing=gc)
        Trainer(m, None, cfg, tmp_path / str(gc), batches(2)).fit()
        assert m.model.encoder.gradient_checkpointing is gc
        weights.append({n: p.detach().clone() for n, p in m.named_parameters()})
    for n, p in weights[0].items():
        torch.testing.assert_close(p, weights[1][n], atol=1e-5, rtol=1e-4)


def test_compiled_moe_training_matches_eager(tmp_path):
    """trainer.compile traces the upcycled model (router, dispatch, SPRI experts) through dynamo and AOT
    autograd and trains the same model, through both of SPRI's stages: stage 1 freezes all but the residual
    spectrum and the routers, and stage 2 must then train everything (dynamo does not guard on
    requires_grad: without a recompile per stage, stage 2 left the stage-1-frozen weights untouched).
    aot_eager: inductor's CPU code generation is not the point here (and torch 2.11 miscompiles a
    dynamic-shape index check on CPU); GPU runs use inductor."""
    from helpers import upcycled

    weights, counts, losses = [], [], []
    for compiled in (False, True):
        torch._dynamo.reset()
        torch.manual_seed(0)
        m, _, _ = upcycled("spri", energy=0.5)
        m.config.dropout = 0.0
        stages = [StageConfig(name="s1", steps=2, lr=1e-2, trainable=["residual", "router"]),
                  StageConfig(name="s2", steps=2, lr=1e-2, trainable=["all"])]
        cfg = TrainerConfig(stages=stages, progress=False, compile=compiled, compile_backend="aot_eager", log_every=1)
        data = [b | {"input_features": b["input_features"][..., : 32 + 16 * i]} for i, b in enumerate(batches(3))]
        t = Trainer(m, None, cfg, tmp_path / str(compiled), data)
        t._wrap()
        assert isinstance(t.wrapped, torch._dynamo.eval_frame.OptimizedModule) is compiled
        losses.append([loss for stage in t.fit() for _, loss in stage["losses"]])
        weights.append({n: p.detach().clone() for n, p in m.named_parameters()})
        counts.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
    assert counts[1] > counts[0]  # graphs were really captured
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    # AdamW moves every weight by up to lr per step whatever the gradient's size, so rounding differences
    # in tiny gradients show up at ~1e-5; a wrong gradient would move weights by ~lr (1e-2)
    for n, p in weights[0].items():
        torch.testing.assert_close(p, weights[1][n], atol=5e-4, rtol=0)


class NaNAfter(TrainerExtension):
    """An extension whose loss term turns NaN on chosen forward passes (a diverging step)."""

    def __init__(self, bad: set[int]) -> None:
        self.calls, self.bad = 0, bad

    def loss(self, model, batch, out, routing) -> dict[str, torch.Tensor]:
        self.calls += 1
        return {"nan_probe": out.logits.sum() * (float("nan") if self.calls in self.bad else 0.0)}


def test_a_non_finite_step_is_skipped_counted_and_training_goes_on(tmp_path):
    m = model()
    cfg = TrainerConfig(stages=[StageConfig(name="s", steps=6, lr=1e-2)], progress=False, log_every=1)
    probe = NaNAfter({3})
    logged = []

    class Log:
        def log_metrics(self, record, step):
            logged.append(record)

    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    Trainer(m, None, cfg, tmp_path, batches(6), logger=Log(), extensions=[probe]).fit()
    assert all(torch.isfinite(p).all() for p in m.parameters())
    assert any(not torch.equal(p, before[n]) for n, p in m.named_parameters())
    counts = [r["nonfinite_steps"] for r in logged if "nonfinite_steps" in r]
    assert counts == [0, 0, 1, 1, 1, 1]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in logged if "loss" in r)


def test_a_skipped_micro_batch_leaves_the_logged_metrics_finite(tmp_path):
    """grad_accum=2, the second micro-batch of step 1 diverges: the step is skipped and its log line reports
    the last finite micro-batch's metrics, not the NaN one's."""
    m = model()
    cfg = TrainerConfig(stages=[StageConfig(name="s", steps=3, lr=1e-2)], progress=False, log_every=1, grad_accum=2)
    logged = []

    class Log:
        def log_metrics(self, record, step):
            logged.append(record)

    Trainer(m, None, cfg, tmp_path, batches(6), logger=Log(), extensions=[NaNAfter({2})]).fit()
    steps = [r for r in logged if "nonfinite_steps" in r]
    assert [r["nonfinite_steps"] for r in steps] == [1, 1, 1]
    assert all(math.isfinite(r[k]) for r in steps for k in r if k.startswith(("loss", "grad")) and k != "grad_norm")
    assert "loss/nan_probe" in steps[0]


def test_a_stage_that_skips_most_of_its_steps_stops(tmp_path):
    """Below max_nonfinite_steps but past max_nonfinite_fraction of the stage: 5 of 8 steps skipped stops the
    run (it had exited 0 and evaluated a model with dev loss 2.4e10), naming the stage, the count and the
    last good checkpoint."""
    from src.utils.errors import NonFiniteError

    m = model()
    cfg = TrainerConfig(stages=[StageConfig(name="s", steps=8, lr=1e-2)], progress=False, max_nonfinite_steps=10)
    with pytest.raises(NonFiniteError) as err:
        Trainer(m, None, cfg, tmp_path, batches(8), extensions=[NaNAfter(set(range(2, 100)))]).fit()
    assert str(err.value).startswith("stage s step 6: 5 non-finite steps in stage s (5 in the run; more than "
                                     "trainer.max_nonfinite_fraction=0.5 of the stage's 8); last good checkpoint: ")
    assert "\n" not in str(err.value)


def test_divergence_names_the_last_checkpoint_saved_before_the_first_non_finite_step(tmp_path):
    """Steps 5-9 are skipped (NaN loss): the step-6 and step-8 checkpoints hold finite weights, but they come after
    the first bad step; the one named is step 4's, and it outlives keep_checkpoints=2's pruning."""
    from safetensors.torch import load_file

    from src.utils.errors import NonFiniteError

    m = model()
    cfg = TrainerConfig(stages=[StageConfig(name="s", steps=16, lr=1e-2)], progress=False, save_every=2,
                        max_nonfinite_steps=4, keep_checkpoints=2)
    probe = NaNAfter(set(range(5, 100)))  # NaN from the 5th forward pass on
    with pytest.raises(NonFiniteError) as err:
        Trainer(m, None, cfg, tmp_path, batches(16), extensions=[probe]).fit()
    message = str(err.value)
    named = tmp_path / "checkpoints" / "step-00000004"
    assert message.startswith("stage s step 9: 5 non-finite steps") and message.endswith(
        f"last good checkpoint: {named}. Lower trainer.lr or check the data")
    assert sorted(d.name for d in (tmp_path / "checkpoints").glob("step-*")) == [
        "step-00000004", "step-00000006", "step-00000008"]  # 4 kept past the 2 newest
    assert read_state(named)["stage_step"] == 4
    assert all(torch.isfinite(t).all() for t in load_file(str(named / "model.safetensors")).values())


def test_non_finite_weights_are_never_saved(tmp_path):
    from src.utils.errors import NonFiniteError

    m = model()
    t = Trainer(m, None, TrainerConfig(stages=[StageConfig(name="s", steps=1)], progress=False), tmp_path, batches(1))
    with torch.no_grad():
        next(m.parameters()).fill_(float("nan"))
    with pytest.raises(NonFiniteError, match="non-finite weights at step 0, not saved"):
        t.checkpoints.save(tmp_path / "checkpoints" / "latest", {"stage": "s"}, t.progress)
    assert not (tmp_path / "checkpoints" / "latest").exists()


def test_deterministic_mode_uses_one_thread_and_deterministic_kernels(tmp_path):
    threads = torch.get_num_threads()
    try:
        Trainer(model(), None, TrainerConfig(stages=[StageConfig(steps=1)], progress=False, deterministic=True),
                tmp_path, batches(1))
        assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(False)


@pytest.mark.parametrize("keep_state", [True, False])
def test_sd_moe_resume_continues_with_the_saved_subspace(tmp_path, keep_state):
    """SD-MoE recomputes its subspace bases every `period` steps. A resume between two recomputations
    continues with the saved bases (TrainerExtension.state_dict in extensions.pt) and ends bit-identical;
    the control, with that file deleted, recomputes fresh bases at the resume step and ends elsewhere."""
    from helpers import upcycled

    from src.models.config import SDMoEConfig
    from src.models.sd_moe import SpectralDecoupler
    from src.training.checkpoint import EXTENSIONS_FILE

    stages = [StageConfig(name="s", steps=8, lr=1e-2)]
    data = batches(3)

    def run(name, loader, resume=False):
        torch.manual_seed(0)
        m, _, _ = upcycled("random")
        cfg = TrainerConfig(stages=stages, progress=False, save_every=2, resume=resume)
        sd = SpectralDecoupler(SDMoEConfig(rank=2, period=3, exact_update=True))
        Trainer(m, None, cfg, tmp_path / name, loader, extensions=[sd]).fit()
        return m

    ref = run("ref", data)
    with pytest.raises(KeyboardInterrupt):
        run("run", Crashing(data, 5))  # bases from steps 0 and 3; saved at step 4; died in step 5
    saved = tmp_path / "run" / "checkpoints" / "step-00000004" / EXTENSIONS_FILE
    assert saved.exists()
    if not keep_state:
        saved.unlink()
    resumed = run("run", data, resume=True)
    same = all(torch.equal(p, q) for p, q in zip(ref.parameters(), resumed.parameters()))
    assert same is keep_state


def test_an_extension_must_implement_the_protocol(tmp_path):
    class Legacy:  # the old duck-typed `__call__` form: refused with the fix named, not silently ignored
        def __call__(self, model, batch, out):
            return {}

    with pytest.raises(TypeError, match="Legacy is not a TrainerExtension"):
        Trainer(model(), None, TrainerConfig(stages=[StageConfig(steps=1)], progress=False), tmp_path, batches(1),
                extensions=[Legacy()])


@pytest.mark.parametrize("precision, message", [
    ("fp16", "trainer.precision=fp16 is not supported (no loss scaling); use bf16"),
    ("fp8", "trainer.precision: 'fp8' is not one of auto, fp32, bf16"),
])
def test_precision_errors_say_what_is_accepted(precision, message):
    from src.training.config import check_trainer_config
    from src.utils.errors import UserError

    with pytest.raises(UserError) as err:
        check_trainer_config(TrainerConfig(stages=[StageConfig(steps=1)], precision=precision))
    assert str(err.value) == message
