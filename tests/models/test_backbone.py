"""pad_to_30s: true is transformers' encoder exactly; false takes shorter inputs."""

from __future__ import annotations

import torch
from helpers import tiny_whisper

from src.models.backbone import ShortFormWhisperEncoder, load_whisper, set_pad_to_30s


def test_padded_input_gives_stock_logits_in_both_modes():
    stock = tiny_whisper()
    feats = torch.randn(2, 80, 3000)
    dec = torch.tensor([[1, 5, 6, 7], [1, 9, 3, 2]])
    with torch.no_grad():
        ref = stock(input_features=feats, decoder_input_ids=dec).logits
        for pad in (True, False):
            model = tiny_whisper()
            set_pad_to_30s(model, pad)
            assert isinstance(model.get_encoder(), ShortFormWhisperEncoder) is (not pad)
            torch.testing.assert_close(model(input_features=feats, decoder_input_ids=dec).logits, ref, rtol=0, atol=0)


def test_short_input_runs_and_uses_sliced_positions():
    model = tiny_whisper()
    set_pad_to_30s(model, False)
    feats = torch.randn(1, 80, 500)
    with torch.no_grad():
        enc = model.get_encoder()(feats).last_hidden_state
        assert enc.shape == (1, 250, 32)
        # The first 250 positions are used: same as computing by hand with the stock layers.
        enc_mod = model.model.encoder
        x = torch.nn.functional.gelu(enc_mod.conv2(torch.nn.functional.gelu(enc_mod.conv1(feats))))
        h = x.permute(0, 2, 1) + model.model.encoder.embed_positions.weight[:250]
        for layer in model.model.encoder.layers:
            h = layer(h, None, layer_head_mask=None)[0]
        torch.testing.assert_close(enc, model.model.encoder.layer_norm(h))
        logits = model(input_features=feats, decoder_input_ids=torch.tensor([[1, 2]])).logits
    assert logits.shape == (1, 2, 64) and torch.isfinite(logits).all()
    stock = tiny_whisper()
    try:
        stock(input_features=feats, decoder_input_ids=torch.tensor([[1, 2]]))
        raise AssertionError("stock transformers should refuse 500 frames")
    except ValueError:
        pass


def test_save_and_load_roundtrip_keeps_mode(tmp_path):
    from transformers import WhisperTokenizerFast  # noqa: F401  (the loader needs tokenizer files)

    from src.data.text import train_toy_tokenizer

    tok = train_toy_tokenizer(["hello world"] * 10, tmp_path / "m", vocab_size=300)
    model = tiny_whisper()
    model.save_pretrained(tmp_path / "m", safe_serialization=True)
    loaded, tok2 = load_whisper(tmp_path / "m", pad_to_30s=False)
    assert isinstance(loaded.get_encoder(), ShortFormWhisperEncoder) and len(tok2) == len(tok)
    feats = torch.randn(1, 80, 3000)
    dec = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(input_features=feats, decoder_input_ids=dec).logits,
                                   model(input_features=feats, decoder_input_ids=dec).logits)
