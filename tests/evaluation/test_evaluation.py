"""Scoring per direction (sacrebleu conventions), rescoring from saved hypotheses, COMET through
the real unbabel-comet code on a tiny local checkpoint, and decoding with routing statistics."""

from __future__ import annotations

import csv
import json
import math

import pytest
import sacrebleu
import torch
from comet_tiny import build_tiny_comet
from metrics_golden import TRANSLATIONS

from src.evaluation.config import CometConfig, EvalConfig, MetricsConfig
from src.evaluation.results import read_hypotheses, read_results, score, write_hypotheses, write_results
from src.evaluation.run import evaluate_model, rescore_split

ROWS = TRANSLATIONS  # the fixed hypotheses the metric goldens use too
NO_COMET = MetricsConfig(comet=CometConfig(model=None))


def test_bleu_matches_sacrebleu_with_documented_tokenizers(tmp_path):
    table = score(ROWS, NO_COMET)
    by = {r["direction"]: r for r in table}
    for lang, tok in (("de", "13a"), ("zh-CN", "char"), ("ja", "char")):
        hyps, refs = [r["hyp"] for r in ROWS[lang]], [r["ref"] for r in ROWS[lang]]
        assert by[lang]["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize=tok).score)
        assert by[lang]["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
        assert f"tok:{tok}" in by[lang]["bleu_signature"] and "case:mixed" in by[lang]["bleu_signature"]
        assert by[lang]["segments"] == len(ROWS[lang])
    assert [r["direction"] for r in table] == ["de", "zh-CN", "ja", "average"]  # CoVoST2 order + average
    assert by["average"]["bleu"] == pytest.approx(sum(by[d]["bleu"] for d in ROWS) / 3)
    assert by["average"]["chrf"] == pytest.approx(sum(by[d]["chrf"] for d in ROWS) / 3)
    assert by["average"]["segments"] == 5 and by["average"]["comet"] is None
    assert "unavailable" in by["average"]["comet_note"]
    override = {r["direction"]: r for r in score(ROWS, MetricsConfig(bleu_tokenize={"zh-CN": "zh"},
                                                                       comet=CometConfig(model=None)))}
    assert "tok:zh" in override["zh-CN"]["bleu_signature"]


def test_transcription_direction_gets_wer_and_stays_out_of_the_translation_average():
    asr = [{"id": "a.en", "src": "the cat sleeps", "ref": "The cat sleeps.", "hyp": "the cat sleep"},
           {"id": "b.en", "src": "two dogs run", "ref": "Two dogs run!", "hyp": "2 dogs run"}]
    table = score({**ROWS, "en": asr}, NO_COMET)
    by = {r["direction"]: r for r in table}
    assert [r["direction"] for r in table] == ["en", "de", "zh-CN", "ja", "average"]
    # Whisper's English normaliser: case, punctuation and "two" -> "2" do not count; "sleep" vs "sleeps" does.
    assert by["en"]["wer"] == pytest.approx(100 * 1 / 6)
    assert by["de"]["wer"] is None and by["average"]["wer"] == pytest.approx(by["en"]["wer"])
    assert by["average"]["bleu"] == pytest.approx(sum(by[d]["bleu"] for d in ROWS) / 3)  # translations only
    assert by["average"]["segments"] == 7


def test_wer_is_undefined_without_words():
    from src.evaluation.metrics import word_error_rate

    assert word_error_rate(["hello"], ["!?"]) is None
    assert word_error_rate(["hello there", "x"], ["Hello, there.", "  "]) == 0.0


def test_transcription_examples_are_one_per_clip():
    from src.data.schema import Example
    from src.evaluation.run import task_examples

    exs = [Example(f"c{i}.{lang}", f"c{i}.mp3", f"sentence {i}", lang, f"{lang} {i}") for i in range(2)
           for lang in ("de", "ja")]
    asr = task_examples(exs, "transcribe")
    assert [(e.audio, e.tgt_lang, e.translation) for e in asr] == [("c0.mp3", "en", "sentence 0"),
                                                                    ("c1.mp3", "en", "sentence 1")]
    assert task_examples(exs, "translate") == exs


def test_rescore_reproduces_results_from_tsvs_alone(tmp_path):
    write_hypotheses(tmp_path, ROWS)
    table = score(read_hypotheses(tmp_path), NO_COMET)
    write_results(tmp_path, table)
    first = (tmp_path / "results.csv").read_text()
    (tmp_path / "results.csv").unlink()
    rescored = rescore_split(tmp_path, NO_COMET)
    assert (tmp_path / "results.csv").read_text() == first
    assert [r["bleu"] for r in read_results(tmp_path / "results.csv")] == pytest.approx([r["bleu"] for r in rescored])
    with open(tmp_path / "de.tsv", encoding="utf-8") as f:
        assert next(csv.reader(f, delimiter="\t")) == ["id", "src", "ref", "hyp"]
    assert "| **average** |" in (tmp_path / "results.md").read_text()


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_comet_with_a_tiny_local_checkpoint(tmp_path):
    ckpt = build_tiny_comet(tmp_path / "comet")
    for model in (str(ckpt), str(tmp_path / "comet")):  # the .ckpt, or the directory holding it
        cfg = MetricsConfig(comet=CometConfig(model=model, batch_size=4, gpus=0))
        table = score(ROWS, cfg)
        assert all(r["comet"] is not None and math.isfinite(r["comet"]) for r in table)
        avg = table[-1]
        assert avg["comet"] == pytest.approx(sum(r["comet"] for r in table[:-1]) / 3)
        assert avg["comet_note"] == ""


def test_comet_unavailable_is_reported_not_fatal(tmp_path):
    cfg = MetricsConfig(comet=CometConfig(model=str(tmp_path / "missing_dir_is_not_a_model")))
    table = score(ROWS, cfg)
    assert all(r["comet"] is None and r["bleu"] is not None for r in table)
    assert table[-1]["comet_note"].startswith("unavailable:")
    write_results(tmp_path, table)
    assert "COMET unavailable" in (tmp_path / "results.md").read_text()
    required = MetricsConfig(comet=CometConfig(model=str(tmp_path / "nope"), required=True))
    with pytest.raises(RuntimeError):
        score(ROWS, required)


def test_evaluate_model_writes_tables_and_routing(tmp_path, cv_root):
    from helpers import ucfg
    from transformers import WhisperForConditionalGeneration

    from src.data.config import LoaderConfig
    from src.data.covost2 import CoVoST2Source
    from src.data.text import train_toy_tokenizer
    from src.models.backbone import set_pad_to_30s, toy_config
    from src.models.config import MoEConfig, ToyArch
    from src.models.upcycling.apply import upcycle_model

    tok = train_toy_tokenizer(["the cat sleeps", "de: a dog runs"] * 20, tmp_path / "tok", vocab_size=300)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(toy_config(tok, ToyArch(d_model=32, encoder_layers=1, decoder_layers=1,
                                                                     attention_heads=2, ffn_dim=64)))
    set_pad_to_30s(model, False)
    upcycle_model(model, MoEConfig(num_experts=4, top_k=2), ucfg("vanilla"), seed=0, progress=False)
    src = CoVoST2Source(str(cv_root), directions=["de", "zh-CN"], progress=False)
    cfg = EvalConfig(splits=["train", "dev"], beam=2, max_new_tokens=5, comet=CometConfig(model=None))
    tables = evaluate_model(model, tok, src, cfg, tmp_path / "run", LoaderConfig(max_batch_frames=2000),
                            pad_to_30s=False, progress=False)
    assert set(tables) == {"train", "dev"}
    train_dir = tmp_path / "run" / "eval" / "train"
    rows = read_hypotheses(train_dir)
    assert sorted(rows) == ["de", "zh-CN"] and len(rows["de"]) == 3
    assert rows["de"][0]["ref"].startswith("de:")
    routing = json.loads((train_dir / "routing.json").read_text())
    assert set(routing) == {"encoder.layers.0", "decoder.layers.0"}
    for per_lang in routing.values():
        assert set(per_lang) == {"de", "zh-CN"}
        assert all(sum(v) == pytest.approx(1.0) and len(v) == 4 for v in per_lang.values())
    assert read_results(train_dir / "results.csv")[-1]["direction"] == "average"


def test_the_routing_recorder_listens_to_the_collector_and_adds_no_hooks():
    """One hook mechanism on MoE blocks: the recorder consumes the RoutingCollector's records."""
    from helpers import upcycled

    from src.evaluation.generation import RoutingRecorder
    from src.models.whisper_moe import RoutingCollector, moe_blocks

    model, _, _ = upcycled("vanilla")
    collector = RoutingCollector(model)
    blocks = [b for _, b in moe_blocks(model)]
    hooks = [len(b._forward_hooks) + len(b._forward_pre_hooks) for b in blocks]
    feats = torch.randn(2, 80, 64)
    with torch.no_grad(), RoutingRecorder(model, collector) as rec, rec.batch(["de", "ja"], torch.tensor([64, 40])):
        assert [len(b._forward_hooks) + len(b._forward_pre_hooks) for b in blocks] == hooks
        model.model.encoder(feats)
    counts = rec.as_dict()
    enc = [name for name in counts if name.startswith("encoder")]
    assert enc and all(set(counts[n]) == {"de", "ja"} for n in enc)
    assert not collector.listeners  # removed on exit


def test_decoding_batches_take_the_eval_caps_where_set():
    from src.data.config import LoaderConfig
    from src.evaluation.config import EvalConfig
    from src.utils.errors import UserError

    train = LoaderConfig(max_batch_frames=3200, max_batch_size=8, pad_multiple=32)
    assert EvalConfig().batching(train) == train  # null: the training batches
    decode = EvalConfig(max_batch_size=48, max_batch_frames=19200).batching(train)
    assert (decode.max_batch_size, decode.max_batch_frames, decode.pad_multiple) == (48, 19200, 32)
    with pytest.raises(UserError, match="eval.max_batch_size"):
        EvalConfig(max_batch_size=0).check()
