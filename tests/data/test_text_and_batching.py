"""Decoder prompts and labels, the toy tokenizer, collation and length-bucketed batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import WhisperTokenizerFast

from src.data.audio import ClipError, ClipStore
from src.data.dataset import Collator, LengthBucketSampler, SpeechTranslationDataset
from src.data.languages import COVOST2_EN_XX
from src.data.schema import Example
from src.data.text import IGNORE_INDEX, encode_target, prompt_ids, train_toy_tokenizer
from src.utils.errors import UserError


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    texts = ["the cat sleeps", "a dog runs", "猫が寝る", "кошка спит"] * 20
    return train_toy_tokenizer(texts, tmp_path_factory.mktemp("tok"), vocab_size=400)


def test_prompt_uses_whisper_language_codes(tok):
    for code, lang in (("zh-CN", "<|zh|>"), ("sv-SE", "<|sv|>"), ("de", "<|de|>"), ("en", "<|en|>")):
        task = "transcribe" if code == "en" else "translate"
        toks = tok.convert_ids_to_tokens(prompt_ids(tok, code, task))
        assert toks == ["<|startoftranscript|>", lang, f"<|{task}|>", "<|notimestamps|>"]
    assert len({prompt_ids(tok, c)[1] for c in COVOST2_EN_XX}) == 15  # one token per direction


def test_labels_shift_and_mask_the_prompt(tok):
    inputs, labels = encode_target(tok, "the cat sleeps", "ja", "translate")
    text = tok.encode(" the cat sleeps", add_special_tokens=False)
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    assert inputs == prompt_ids(tok, "ja") + text
    assert labels == [IGNORE_INDEX] * 3 + text + [eot]
    assert len(inputs) == len(labels)
    assert tok.decode(text).strip() == "the cat sleeps"


def test_toy_tokenizer_reloads_with_specials(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    again = WhisperTokenizerFast.from_pretrained(tmp_path)
    assert prompt_ids(again, "zh-CN") == prompt_ids(tok, "zh-CN")
    assert again.encode(" 猫が寝る", add_special_tokens=False) == tok.encode(" 猫が寝る", add_special_tokens=False)


def test_collator_pads_features_and_labels(tok):
    rng = np.random.default_rng(0)
    audio = {"a": rng.standard_normal(16_000).astype(np.float32) * 0.1,
             "b": rng.standard_normal(8_000).astype(np.float32) * 0.1}

    def reader(key):
        if key == "bad":
            raise ClipError("unreadable_clip", "bad is corrupt")
        return audio[key]

    exs = [Example("a.de", "a", "the cat sleeps", "de", "die katze schläft", 1.0),
           Example("b.ja", "b", "a dog runs", "ja", "犬が走る", 0.5),
           Example("x.de", "bad", "x", "de", "y", 1.0)]
    ds = SpeechTranslationDataset(exs, ClipStore(reader), tok, cache_features=True)
    batch = Collator(pad_token_id=0, pad_to_30s=False, pad_multiple=32)([ds[0], ds[1], ds[2]])
    assert batch["skipped"] == [("unreadable_clip", "x.de", "bad is corrupt")]
    assert batch["input_features"].shape == (2, 80, 128)  # 100 frames rounded up to 32
    assert batch["ids"] == ["a.de", "b.ja"] and batch["tgt_langs"] == ["de", "ja"]
    lab, mask = batch["labels"], batch["decoder_attention_mask"]
    n1 = int(mask[1].sum())
    assert (lab[1, n1:] == IGNORE_INDEX).all() and (batch["decoder_input_ids"][1, n1:] == 0).all()
    assert "a" in ds._cache and ds.features("a")[0] is ds._cache["a"][0]  # computed once, reused
    padded = Collator(pad_token_id=0, pad_to_30s=True)([ds[0]])
    assert padded["input_features"].shape == (1, 80, 3000)


def test_bucket_sampler_respects_budget_and_covers_everything():
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 1500, size=500).tolist()
    s = LengthBucketSampler(lengths, max_frames=6000, max_batch_size=16, seed=1)
    batches = list(s)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(500))
    assert all(len(b) * max(lengths[i] for i in b) <= 6000 and len(b) <= 16 for b in batches)
    assert [list(b) for b in LengthBucketSampler(lengths, 6000, 16, seed=1)] == batches  # deterministic
    s.set_epoch(1)
    assert list(s) != batches
    # bucketing: padded frames waste far less than random batching
    waste = sum(len(b) * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in batches)
    assert waste / sum(lengths) < 0.15
    with pytest.raises(UserError, match=r"^data\.loader\.max_batch_frames=1000 is smaller"):  # the real key
        LengthBucketSampler(lengths, 1000)


def test_collator_handles_all_skipped():
    batch = Collator(pad_token_id=0)([{"id": "x", "skip": "empty_clip", "detail": "d"}])
    assert "input_features" not in batch and batch["skipped"] == [("empty_clip", "x", "d")]


def test_loader_with_workers_matches_in_process(tok, cv_root):
    from src.data.config import LoaderConfig
    from src.data.covost2 import CoVoST2Source
    from src.data.loading import make_loader

    src = CoVoST2Source(str(cv_root), directions=["de", "zh-CN"], progress=False)
    exs = src.examples("train")
    out = []
    for workers in (0, 2):
        cfg = LoaderConfig(max_batch_frames=1000, max_batch_size=4, num_workers=workers)
        loader = make_loader(exs, src, tok, cfg, n_mels=80, pad_to_30s=False, shuffle=True, seed=0)
        out.append([(b["ids"], b["input_features"]) for b in loader])
    assert [ids for ids, _ in out[0]] == [ids for ids, _ in out[1]]
    assert sorted(i for ids, _ in out[0] for i in ids) == sorted(e.id for e in exs)
    for (_, a), (_, b) in zip(*out):
        torch.testing.assert_close(a, b)
