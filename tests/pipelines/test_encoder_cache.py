"""model.cached_encoder: the frozen encoder's outputs computed once per clip (src/pipelines/encoder_cache.py) give
the decoder exactly what the whole model computes, are reused by key, and rebuilt, saying why, when the encoder,
the clips or the window change."""

from __future__ import annotations

import re

import pytest
import torch
from helpers import make_cfg
from transformers import WhisperConfig, WhisperForConditionalGeneration

from src.config import ConfigError, validate
from src.data.config import DataConfig, LoaderConfig
from src.data.covost2 import CoVoST2Source
from src.data.dataset import ENCODER_STATES
from src.data.loading import make_loader
from src.data.text import train_toy_tokenizer
from src.models.backbone import encoder_inputs
from src.pipelines.encoder_cache import encoder_cache
from src.training.config import StageConfig, TrainerConfig
from src.training.param_groups import set_trainable
from src.training.trainer import Trainer

LOADER = LoaderConfig(max_batch_frames=12_000, max_batch_size=4)


@pytest.fixture
def setup(cv_root, tmp_path):
    source = CoVoST2Source(str(cv_root), directions=["de", "zh-CN"], progress=False)
    tok = train_toy_tokenizer(["the cat sleeps", "de:a dog", "zh-CN:two birds"] * 20, tmp_path / "tok", vocab_size=300)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(WhisperConfig(
        vocab_size=len(tok), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80, max_source_positions=1500,
        max_target_positions=64, dropout=0.0, suppress_tokens=[], pad_token_id=0, bos_token_id=0, eos_token_id=0,
        decoder_start_token_id=1)).eval()
    source.data = DataConfig(target="src.data.covost2.CoVoST2Source", options={"root": str(cv_root)})
    return source, tok, model, source.examples("train") + source.examples("dev")


def cache(setup, tmp_path, examples=None, dtype="float32"):
    source, tok, model, train = setup
    return encoder_cache(model, tok, source, examples or train, data=source.data, loader=LOADER,
                         cache_dir=tmp_path / "cache", dtype=dtype, progress=False)


@pytest.mark.parametrize("window", [None, 1000])  # 30 s padding; a fixed 10 s window (positions sliced)
def test_the_decoder_on_cached_states_computes_what_the_whole_model_does(setup, tmp_path, window):
    from src.models.backbone import set_pad_to_30s

    source, tok, model, examples = setup
    set_pad_to_30s(model, window is None)
    loader = LoaderConfig(max_batch_frames=12_000, max_batch_size=4, window_frames=window)
    states = encoder_cache(model, tok, source, examples, data=source.data, loader=loader, cache_dir=tmp_path,
                           dtype="float32", progress=False, pad_to_30s=window is None)
    plain, cached = (list(make_loader(examples, source, tok, loader, n_mels=80, pad_to_30s=window is None,
                                      shuffle=False, encoder_states=s)) for s in (None, states))
    assert [b["ids"] for b in plain] == [b["ids"] for b in cached] and sum(len(b["ids"]) for b in plain) == 8
    for a, b in zip(plain, cached):
        assert a["input_features"].shape[-1] == (window or 3000) and "input_features" not in b
        assert b[ENCODER_STATES].shape[1:] == ((window or 3000) // 2, 32)
        assert torch.equal(a["feature_lengths"], b["feature_lengths"])
        with torch.no_grad():
            la, lb = (model(**encoder_inputs(x, torch.device("cpu")), decoder_input_ids=x["decoder_input_ids"]).logits
                      for x in (a, b))
        torch.testing.assert_close(la, lb, rtol=0, atol=1e-5)


def test_the_cache_is_reused_by_key_and_rebuilt_saying_why(setup, tmp_path, caplog):
    source, tok, model, examples = setup
    with caplog.at_level("INFO"):
        first = cache(setup, tmp_path)
        again = cache(setup, tmp_path)
        fewer = cache(setup, tmp_path, examples=examples[:2])
        with torch.no_grad():
            model.model.encoder.layers[0].fc1.weight.add_(1e-3)
        other = cache(setup, tmp_path)
    assert again.dir == first.dir and "(4 clips, reused)" in caplog.text
    assert len({first.dir, fewer.dir, other.dir}) == 3
    assert f"(corpus differ(s) from {first.dir.name})" in caplog.text
    assert f"(encoder differ(s) from {first.dir.name})" in caplog.text  # the closest cache: the same clips
    assert len(first.index) == 4 and len(fewer.index) == len({ex.audio for ex in examples[:2]})  # train + dev


def test_half_precision_states_stay_close(setup, tmp_path):
    exact, half = cache(setup, tmp_path), cache(setup, tmp_path, dtype="float16")
    key = next(iter(exact.index))
    a, b = exact.get(key)[0], half.get(key)[0]
    assert half.states.dtype.name == "float16" and 0 < float((a - b).abs().max()) <= 2e-3 * float(a.abs().max())


def test_a_frozen_group_never_trains_and_training_on_cached_states_moves_only_the_decoder(setup, tmp_path):
    source, tok, model, examples = setup
    counts = set_trainable(model, ["all"], frozen=["encoder", "cross_kv"])
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {n for n, _ in model.named_parameters()
                      if n.startswith("model.encoder.") or ".encoder_attn.k_proj." in n or ".encoder_attn.v_proj." in n}
    assert any(".encoder_attn.v_proj.bias" in n for n in frozen)
    assert not any(".encoder_attn.q_proj" in n for n in frozen)
    assert counts["trainable"] == sum(p.numel() for n, p in model.named_parameters() if n not in frozen)
    loader = make_loader(examples, source, tok, LOADER, n_mels=80, pad_to_30s=True, shuffle=True,
                         encoder_states=cache(setup, tmp_path))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainerConfig(stages=[StageConfig(steps=3, lr=1e-2, trainable=["all"])], frozen=["encoder"], progress=False)
    Trainer(model, tok, cfg, tmp_path / "run", loader).fit()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved and not any(n.startswith("model.encoder.") for n in moved)


@pytest.mark.parametrize("overrides, message", [
    (["moe.where=decoder"], "needs trainer.frozen=[encoder]"),
    (["trainer.frozen=[encoder]", "moe.where=both", "upcycle=vanilla"], "needs moe.where=decoder"),
    (["trainer.frozen=[encoder]", "moe.where=decoder", "model.pad_to_30s=false"], "needs one fixed window per clip"),
    (["trainer.frozen=[encoder]", "moe.where=decoder", "+data.loader.window_frames=1000"],
     "needs model.pad_to_30s=false"),
    (["trainer.frozen=[encoder]", "moe.where=decoder", "model.pad_to_30s=false", "+data.loader.window_frames=500"],
     "needs data.max_duration <= 5 (now 30.0)"),
    (["trainer.frozen=[encoder]", "model.pad_to_30s=false", "+data.loader.window_frames=999"], "must be even"),
])
def test_the_cached_encoder_config_is_checked(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(make_cfg(["model.cached_encoder=true", "model.pad_to_30s=true", "data.loader.max_batch_frames=48000",
                           *overrides], tmp=tmp_path))


def test_a_cache_write_error_is_one_line_naming_the_directory(tmp_path, monkeypatch):
    import numpy as np

    from src.data.encoder_states import write_encoder_states
    from src.utils.atomic import OutputError

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np.lib.format, "open_memmap", full)
    with pytest.raises(OutputError) as err:
        write_encoder_states(tmp_path / "states", (1, 2, 3), "float16", {}, [])
    assert str(err.value).startswith(f"cannot write the encoder cache {tmp_path / 'states'}: No space left")
    assert not (tmp_path / "states").exists()
