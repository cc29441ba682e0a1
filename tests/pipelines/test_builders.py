"""Config to objects (src/pipelines/builders.py): the upcycling's calibration batches and the targets its
`auto` budget reads (`upcycle.budget_task`)."""

from __future__ import annotations

import pytest
import torch
from helpers import MOE, calib_batch, make_cfg, tiny_whisper, ucfg

from src.config import validate
from src.data.covost2 import CoVoST2Source
from src.data.text import train_toy_tokenizer
from src.models.backbone import set_pad_to_30s
from src.models.upcycling.apply import upcycle_model
from src.pipelines.builders import budget_task, calibration_batches
from src.utils.errors import UserError


@pytest.mark.parametrize("overrides, expected", [
    (["upcycle=spri"], "translate"),  # the toy model learned its translation task in pretraining
    (["upcycle=spri", "model=whisper_base"], "transcribe"),  # a pretrained Whisper never learned En->X
    (["upcycle=spri", "model=whisper_base", "upcycle.budget_task=translate"], "translate"),  # asked for
    (["upcycle=spri", "upcycle.calibration_task=transcribe"], "transcribe"),
])
def test_the_budget_is_measured_on_a_task_the_dense_model_knows(overrides, expected, tmp_path):
    tok = train_toy_tokenizer(["hello world"] * 5, tmp_path / "tok", vocab_size=300)
    assert budget_task(validate(make_cfg(overrides)), tok) == expected


def test_budget_translate_with_transcription_calibration_is_refused():
    with pytest.raises(UserError, match="budget_task=translate needs translation calibration batches"):
        ucfg("spri", budget_task="translate", calibration_task="transcribe").check()


def test_budget_batches_hold_the_same_clips_with_transcription_targets(cv_root, tmp_path):
    run = validate(make_cfg(["upcycle=spri", "model=whisper_base", "upcycle.calibration_examples=4"]))
    tok = train_toy_tokenizer(["a dog runs in the park", "de:a dog runs", "zh-CN:a dog"] * 5, tmp_path / "tok",
                              vocab_size=300)
    source = CoVoST2Source(str(cv_root), directions=["de", "zh-CN"], progress=False)
    model = tiny_whisper()
    out = calibration_batches(run, model, tok, source, source.examples("train"))
    assert set(out) == {"fit", "heldout", "budget", "budget_heldout"}
    fit_ids = [t for b in out["fit"] for t in b["decoder_input_ids"].tolist()]
    budget_ids = [t for b in out["budget"] for t in b["decoder_input_ids"].tolist()]
    transcribe, translate = tok.convert_tokens_to_ids("<|transcribe|>"), tok.convert_tokens_to_ids("<|translate|>")
    assert all(translate in ids for ids in fit_ids) and all(transcribe in ids for ids in budget_ids)
    assert sum(b["input_features"].shape[0] for b in out["budget"]) <= sum(
        b["input_features"].shape[0] for b in out["fit"])  # the same clips, one transcript each


def test_the_auto_search_and_init_loss_read_the_budget_batches(monkeypatch):
    import src.models.upcycling.apply as up

    calib, budget = [calib_batch(0)], [calib_batch(3)]
    seen = []
    real = up.teacher_forced

    def spy(model, batches, reference=None, keep_logprobs=False):
        seen.append(batches)
        return real(model, batches, reference, keep_logprobs)

    monkeypatch.setattr(up, "teacher_forced", spy)
    model = tiny_whisper()
    set_pad_to_30s(model, False)
    report = upcycle_model(model, MOE, ucfg("spri"), seed=0, calib=calib, progress=False, budget=budget)
    assert len(seen) >= 3 and all(b is budget for b in seen)  # dense reference, the search, init_loss
    assert report["auto"]["budget_met"] in (True, False) and report["init_loss"]["kl"] is not None
    assert torch.isfinite(torch.tensor(report["init_loss"]["kl"]))


def test_builders_ask_every_strategy_for_its_trainer_extensions(monkeypatch):
    """No special case per strategy: SPRI's residual-spectrum stage comes from SPRI.extensions through its
    upcycling, and any strategy's extensions reach the trainer the same way."""
    from helpers import upcycling

    from src.models.upcycling import STRATEGIES
    from src.models.upcycling.spri import ResidualSpectrum
    from src.pipelines.builders import moe_extensions
    from src.utils.extension import TrainerExtension

    model, _, result = upcycling("spri")
    spri = moe_extensions(validate(make_cfg(["upcycle=spri"])), model, None, [], result.extensions)
    assert [type(e).__name__ for e in spri] == ["MoELoss", "ResidualSpectrum"]
    probe = TrainerExtension()
    monkeypatch.setattr(type(STRATEGIES["vanilla"]), "extensions", lambda self, cfg, fit: [probe])
    model, _, result = upcycling("vanilla")
    assert result.extensions == [probe]
    vanilla = moe_extensions(validate(make_cfg(["upcycle=vanilla"])), model, None, [], result.extensions)
    assert vanilla[-1] is probe and not any(isinstance(e, ResidualSpectrum) for e in vanilla)
