"""CTranslate2 (faster-whisper) Whisper model directory -> transformers Whisper checkpoint directory.

Why: faster-whisper models are shipped as CTranslate2 directories (model.bin, config.json, vocabulary,
tokenizer.json), sometimes in pip packages that work offline, while this project trains and evaluates
transformers' WhisperForConditionalGeneration. This module reads the CTranslate2 binary format and
writes an equivalent Hugging Face checkpoint, without needing the ctranslate2 package.

The model.bin layout (CTranslate2 `src/models/model.cc` reads what `model_spec.py::_serialize` writes;
all integers little-endian, strings are uint16 length counting a trailing NUL, then the bytes + NUL):

    uint32 binary_version                      (2..6; 6 is current)
    string spec_name, uint32 spec_revision     (binary_version >= 2; "WhisperSpec", revision <= 3)
    uint32 n_variables, then per variable:
        string name, uint8 rank, uint32 dims[rank],
        uint8 dtype id (0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16), uint32 n_bytes, payload
        (binary_version < 4: uint8 item size and uint32 element count instead)
    uint32 n_aliases, then (string alias, string target) pairs   (binary_version >= 3)

Variables are named after the WhisperSpec layout (`encoder/layer_0/self_attention/linear_0/weight`).
Scalars (rank 0) carry attributes: `encoder/num_heads`, `decoder/num_heads`, `decoder/activation`...
Attention projections are fused: self-attention linear_0 = [q; k; v], cross-attention linear_0 = q and
linear_1 = [k; v]. transformers' k_proj has no bias; the CT2 converter writes zeros there, and any
value would be exact to drop anyway (it adds the same constant to every score of a query row, which
softmax ignores). Variables equal to an earlier one (alphabetically) are written once and aliased:
the tied output projection `decoder/projection/weight` is an alias of `decoder/embeddings/weight`.

Weights are written as float32 whatever the stored float type (float16/bfloat16 -> float32 is exact),
so the converted model gives the same logits as the CTranslate2 weights in float32. Quantised models
(int8/int16 weights with `*_scale` variables) are refused: dequantising them would silently give a
different model than the original float one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from src.utils.atomic import atomic_dir
from src.utils.errors import UserError

if TYPE_CHECKING:
    from transformers import GenerationConfig, WhisperConfig

log = logging.getLogger(__name__)

SUPPORTED_BINARY_VERSIONS = range(2, 7)  # model.cc reads 1..6; version 1 had no spec name
MAX_WHISPER_REVISION = 3
# CTranslate2's DataType enum (include/ctranslate2/types.h); numpy dtype to read each one as.
_DTYPES: dict[int, tuple[str, str]] = {
    0: ("float32", "<f4"), 1: ("int8", "i1"), 2: ("int16", "<i2"), 3: ("int32", "<i4"),
    4: ("float16", "<f2"), 5: ("bfloat16", "<u2"),  # numpy has no bfloat16: keep the raw bits
}
_ITEM_SIZE_DTYPES = {4: 0, 2: 2, 1: 1}  # binary_version < 4 stored an item size, not a type id (model.cc)
# decoder/activation: common_spec.Activation. Revision 3 renumbered it (GELU 1 -> 3, 1 became GELUTanh).
_GELU_ID = {1: 1, 2: 1, 3: 3}

# Whisper's control tokens, looked up by name in the vocabulary (their ids differ between the English-only
# and the multilingual vocabularies).
EOT, SOT = "<|endoftext|>", "<|startoftranscript|>"
TRANSLATE, TRANSCRIBE = "<|translate|>", "<|transcribe|>"
START_OF_LM, START_OF_PREV, NO_TIMESTAMPS = "<|startoflm|>", "<|startofprev|>", "<|notimestamps|>"
NO_SPEECH = ("<|nospeech|>", "<|nocaptions|>")  # renamed in later tokenizers; CT2 accepts both
_TIMESTAMP = re.compile(r"<\|\d+\.\d\d\|>")
_LANGUAGE = re.compile(r"<\|[a-z]{2,3}\|>")


class ConversionError(UserError):
    """A CTranslate2 directory that cannot be converted exactly; the message is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


# ---------------------------------------------------------------------------------------------
# model.bin reader


@dataclass
class CT2Variable:
    """One stored variable: its array (bfloat16 widened to float32) and the dtype it was stored in."""

    array: np.ndarray
    dtype: str


@dataclass
class CT2Model:
    """The parsed content of a model.bin: header, variables by name, aliases (alias -> variable)."""

    binary_version: int
    spec: str
    revision: int
    variables: dict[str, CT2Variable]
    aliases: dict[str, str] = field(default_factory=dict)


class _Stream:
    """Reads exact byte counts; a short read is a truncated file, reported with its offset."""

    def __init__(self, f: BinaryIO, path: Path) -> None:
        self.f, self.path, self.pos = f, path, 0

    def read(self, n: int, what: str) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise ConversionError(
                f"{self.path} is truncated: needed {n} bytes for {what} at offset {self.pos}, found {len(data)}"
            )
        self.pos += n
        return data

    def uint(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        n = self.uint("H", f"the length of {what}")
        if n == 0:
            raise ConversionError(f"{self.path}: invalid zero string length for {what} at offset {self.pos - 2}")
        raw = self.read(n, what)
        if raw[-1] != 0:
            raise ConversionError(f"{self.path}: {what} at offset {self.pos - n} is not NUL-terminated")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConversionError(f"{self.path}: {what} at offset {self.pos - n} is not UTF-8") from e


def read_model_bin(path: str | Path) -> CT2Model:
    """Parse a CTranslate2 model.bin completely; truncation or trailing bytes raise ConversionError (long on
    purpose: the binary layout read top to bottom, in file order)."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise ConversionError(f"cannot read {path}: {e.strerror or e}") from e
    with f:
        s = _Stream(f, path)
        version = s.uint("I", "the binary version")
        if version not in SUPPORTED_BINARY_VERSIONS:
            raise ConversionError(
                f"{path} has binary version {version}; this converter reads versions "
                f"{SUPPORTED_BINARY_VERSIONS.start}-{SUPPORTED_BINARY_VERSIONS.stop - 1} (is it a CTranslate2 model?)"
            )
        spec = s.string("the spec name")
        revision = s.uint("I", "the spec revision")
        if spec != "WhisperSpec":
            raise ConversionError(f"{path} holds a CTranslate2 '{spec}' model, not a Whisper one (WhisperSpec)")
        if revision > MAX_WHISPER_REVISION:
            raise ConversionError(
                f"{path} has WhisperSpec revision {revision}, newer than this converter knows "
                f"(<= {MAX_WHISPER_REVISION}); its variable layout may have changed"
            )
        variables: dict[str, CT2Variable] = {}
        for i in range(s.uint("I", "the variable count")):
            name = s.string(f"the name of variable #{i}")
            rank = s.uint("B", f"the rank of {name}")
            shape = tuple(s.uint("I", f"the shape of {name}") for _ in range(rank))
            if version >= 4:
                type_id = s.uint("B", f"the dtype of {name}")
                if type_id not in _DTYPES:
                    raise ConversionError(f"{path}: variable {name} has unknown dtype id {type_id}")
                n_bytes = s.uint("I", f"the byte count of {name}")
            else:
                item = s.uint("B", f"the item size of {name}")
                if item not in _ITEM_SIZE_DTYPES:
                    raise ConversionError(f"{path}: variable {name} has unknown item size {item}")
                type_id = _ITEM_SIZE_DTYPES[item]
                n_bytes = s.uint("I", f"the element count of {name}") * item
            dtype, np_dtype = _DTYPES[type_id]
            expected = int(np.prod(shape, dtype=np.int64)) * np.dtype(np_dtype).itemsize
            if n_bytes != expected:
                raise ConversionError(
                    f"{path}: variable {name} declares {n_bytes} bytes but shape {list(shape)} of {dtype} "
                    f"needs {expected}"
                )
            if name in variables:
                raise ConversionError(f"{path}: variable {name} is stored twice")
            array = np.frombuffer(s.read(n_bytes, f"the data of {name}"), dtype=np_dtype).reshape(shape)
            if dtype == "bfloat16":  # the high half of a float32: widening is exact
                array = (array.astype(np.uint32) << 16).view(np.float32)
            variables[name] = CT2Variable(array, dtype)
        aliases: dict[str, str] = {}
        if version >= 3:
            for i in range(s.uint("I", "the alias count")):
                alias = s.string(f"the name of alias #{i}")
                aliases[alias] = s.string(f"the target of alias {alias}")
        trailing = len(f.read())
        if trailing:
            raise ConversionError(f"{path} has {trailing} unexpected trailing bytes after offset {s.pos}")
    return CT2Model(version, spec, revision, variables, aliases)


# ---------------------------------------------------------------------------------------------
# variables -> transformers state dict


class _Pool:
    """The file's variables (aliases resolved); every one must be taken exactly once by the mapping."""

    def __init__(self, model: CT2Model) -> None:
        self.vars = dict(model.variables)
        for alias, target in sorted(model.aliases.items()):
            if alias in self.vars:
                raise ConversionError(f"alias {alias} has the name of a stored variable")
            if target not in model.variables:
                raise ConversionError(f"alias {alias} points to {target}, which model.bin does not contain")
            self.vars[alias] = model.variables[target]
        self.aliases = model.aliases
        self.left = set(self.vars)

    def has(self, name: str) -> bool:
        return name in self.vars

    def shape(self, name: str) -> tuple[int, ...]:
        if name not in self.vars:
            raise ConversionError(f"model.bin lacks variable {name}")
        return tuple(self.vars[name].array.shape)

    def tensor(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """A float tensor of the given shape, as float32."""
        got = self.shape(name)
        v = self.vars[name]
        if got != tuple(shape):
            raise ConversionError(f"variable {name} has shape {list(got)}, expected {list(shape)}")
        if v.dtype not in ("float32", "float16", "bfloat16"):
            raise ConversionError(f"variable {name} has dtype {v.dtype}, expected a float type")
        self.left.discard(name)
        return np.ascontiguousarray(v.array, dtype=np.float32)

    def scalar(self, name: str, check: Callable[[float], bool] | None = None, want: str = "") -> float | None:
        """A rank-0 attribute, or None when absent; `check` rejects values transformers cannot express."""
        if name not in self.vars:
            return None
        v = self.vars[name]
        if v.array.ndim != 0:
            raise ConversionError(f"variable {name} has shape {list(v.array.shape)}, expected a scalar")
        self.left.discard(name)
        value = v.array.item()
        if check is not None and not check(value):
            raise ConversionError(f"variable {name} is {value}; transformers' Whisper needs {want}")
        return value


def _check_not_quantised(model: CT2Model) -> None:
    names = set(model.variables) | set(model.aliases)
    for name in sorted(model.variables):
        v = model.variables[name]
        base = re.sub(r"_(scale|zero)$", "", name)
        if base != name and (base in names or name.endswith(("weight_scale", "weight_zero"))):
            raise ConversionError(
                f"model.bin is quantised ({name} is a quantisation scale); convert a float16/float32 "
                "CTranslate2 model instead (ct2-transformers-converter --quantization float16)"
            )
        if v.dtype in ("int8", "int16") and v.array.ndim > 0:
            raise ConversionError(
                f"model.bin is quantised (variable {name} is {v.dtype}); convert a float16/float32 "
                "CTranslate2 model instead (ct2-transformers-converter --quantization float16)"
            )


def _layer_count(pool: _Pool, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"layer_(\d+)/")
    indices = {int(m.group(1)) for n in pool.vars if (m := pattern.match(n))}
    if not indices:
        raise ConversionError(f"model.bin has no {prefix}layer_N variables")
    if indices != set(range(len(indices))):
        missing = sorted(set(range(max(indices) + 1)) - indices)
        raise ConversionError(f"model.bin lacks {prefix}layer_{missing[0]} (has layers {sorted(indices)})")
    return len(indices)


@dataclass
class WhisperDims:
    """Architecture read off the variable shapes and attributes."""

    d_model: int
    num_mel_bins: int
    encoder_layers: int
    decoder_layers: int
    encoder_attention_heads: int
    decoder_attention_heads: int
    encoder_ffn_dim: int
    decoder_ffn_dim: int
    vocab_size: int
    max_source_positions: int
    max_target_positions: int
    tied: bool


def _is_int(value: float, *allowed: int) -> bool:
    return float(value).is_integer() and int(value) in allowed


def _unscaled(value: float) -> bool:
    """CTranslate2 reads an int8 scale as a flag (true: sqrt(d_model)) and a float one as the multiplier."""
    return value == (1.0 if isinstance(value, float) else 0)


def ct2_to_state_dict(model: CT2Model) -> tuple[dict[str, np.ndarray], WhisperDims]:
    """transformers' WhisperForConditionalGeneration state dict (float32) and the architecture.

    Long on purpose: one readable variable-by-variable mapping table of the format (split, it would be read in
    pieces that only make sense together)."""
    _check_not_quantised(model)
    pool = _Pool(model)
    conv1 = pool.shape("encoder/conv1/weight")
    if len(conv1) != 3 or conv1[2] != 3:
        raise ConversionError(f"encoder/conv1/weight has shape {list(conv1)}, expected [d_model, n_mels, 3]")
    d, n_mels = conv1[0], conv1[1]
    heads = {}
    for side in ("encoder", "decoder"):
        h = pool.scalar(f"{side}/num_heads", lambda v: float(v).is_integer() and v > 0, "a positive integer")
        if h is None:
            raise ConversionError(f"model.bin lacks variable {side}/num_heads")
        if d % int(h):
            raise ConversionError(f"{side}/num_heads is {int(h)}, which does not divide d_model {d}")
        heads[side] = int(h)
    # Decoder attributes, read with CTranslate2's defaults for absent ones (src/layers/transformer.cc),
    # must describe Whisper's decoder. The encoder's are fixed in CTranslate2's WhisperEncoder.
    gelu = _GELU_ID.get(model.revision, 3)
    activation = f"GELU, id {gelu} in revision {model.revision}"
    if pool.scalar("decoder/activation", lambda v: _is_int(v, gelu), activation) is None:
        raise ConversionError(f"model.bin lacks decoder/activation (CTranslate2 then uses ReLU; Whisper needs "
                              f"{activation})")
    pool.scalar("decoder/pre_norm", lambda v: _is_int(v, 1), "pre-norm layers (1)")
    pool.scalar("decoder/start_from_zero_embedding", lambda v: _is_int(v, 0), "0")
    pool.scalar("decoder/alibi", lambda v: _is_int(v, 0), "no ALiBi (0)")
    pool.scalar("decoder/alibi_use_positive_positions")  # these two only matter with ALiBi
    pool.scalar("decoder/scale_alibi")
    # Embedding scale: scale_embeddings, else the older multiply_by_sqrt_depth, else sqrt(d_model).
    unscaled = "unscaled embeddings (a false flag, or a float scale of 1.0)"
    scale = pool.scalar("decoder/scale_embeddings", _unscaled, unscaled)
    fallback = pool.scalar("decoder/embeddings/multiply_by_sqrt_depth", _unscaled if scale is None else None, unscaled)
    if scale is None and fallback is None:
        raise ConversionError("model.bin lacks decoder/scale_embeddings (CTranslate2 would scale the embeddings by "
                              "sqrt(d_model); Whisper does not)")
    # Which layer/heads CTranslate2's translator returns as alignments: not a model parameter.
    pool.scalar("decoder/alignment_layer")
    pool.scalar("decoder/alignment_heads")

    n_enc, n_dec = _layer_count(pool, "encoder/"), _layer_count(pool, "decoder/")
    vocab = pool.shape("decoder/embeddings/weight")[0]
    dims = WhisperDims(
        d_model=d, num_mel_bins=n_mels, encoder_layers=n_enc, decoder_layers=n_dec,
        encoder_attention_heads=heads["encoder"], decoder_attention_heads=heads["decoder"],
        encoder_ffn_dim=pool.shape("encoder/layer_0/ffn/linear_0/weight")[0],
        decoder_ffn_dim=pool.shape("decoder/layer_0/ffn/linear_0/weight")[0],
        vocab_size=vocab,
        max_source_positions=pool.shape("encoder/position_encodings/encodings")[0],
        max_target_positions=pool.shape("decoder/position_encodings/encodings")[0],
        tied=True,
    )
    sd: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str, n_out: int, n_in: int) -> None:
        sd[f"{dst}.weight"] = pool.tensor(f"{src}/weight", (n_out, n_in))
        sd[f"{dst}.bias"] = pool.tensor(f"{src}/bias", (n_out,))

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = pool.tensor(f"{src}/gamma", (d,))
        sd[f"{dst}.bias"] = pool.tensor(f"{src}/beta", (d,))

    def split(dst: str, src: str, parts: tuple[str, ...]) -> None:
        """A fused projection [q; k; v] (or [k; v]) into transformers' separate ones; k has no bias."""
        w = pool.tensor(f"{src}/weight", (len(parts) * d, d))
        b = pool.tensor(f"{src}/bias", (len(parts) * d,))
        for i, p in enumerate(parts):
            sd[f"{dst}.{p}_proj.weight"] = w[i * d:(i + 1) * d].copy()
            if p == "k":
                if np.any(b[i * d:(i + 1) * d]):
                    log.warning("%s/bias has a non-zero key part; dropped (softmax ignores it, so exact)", src)
            else:
                sd[f"{dst}.{p}_proj.bias"] = b[i * d:(i + 1) * d].copy()

    def ffn(dst: str, src: str, ffn_dim: int) -> None:
        linear(f"{dst}.fc1", f"{src}/linear_0", ffn_dim, d)
        linear(f"{dst}.fc2", f"{src}/linear_1", d, ffn_dim)
        norm(f"{dst}.final_layer_norm", f"{src}/layer_norm")

    enc, dec = "model.encoder", "model.decoder"
    sd[f"{enc}.conv1.weight"] = pool.tensor("encoder/conv1/weight", (d, n_mels, 3))
    sd[f"{enc}.conv1.bias"] = pool.tensor("encoder/conv1/bias", (d,))
    sd[f"{enc}.conv2.weight"] = pool.tensor("encoder/conv2/weight", (d, d, 3))
    sd[f"{enc}.conv2.bias"] = pool.tensor("encoder/conv2/bias", (d,))
    sd[f"{enc}.embed_positions.weight"] = pool.tensor("encoder/position_encodings/encodings",
                                                      (dims.max_source_positions, d))
    norm(f"{enc}.layer_norm", "encoder/layer_norm")
    for i in range(n_enc):
        src, dst = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        split(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q", "k", "v"))
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1", d, d)
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        ffn(dst, f"{src}/ffn", dims.encoder_ffn_dim)

    sd[f"{dec}.embed_tokens.weight"] = pool.tensor("decoder/embeddings/weight", (vocab, d))
    sd[f"{dec}.embed_positions.weight"] = pool.tensor("decoder/position_encodings/encodings",
                                                      (dims.max_target_positions, d))
    norm(f"{dec}.layer_norm", "decoder/layer_norm")
    for i in range(n_dec):
        src, dst = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        split(f"{dst}.self_attn", f"{src}/self_attention/linear_0", ("q", "k", "v"))
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1", d, d)
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0", d, d)
        split(f"{dst}.encoder_attn", f"{src}/attention/linear_1", ("k", "v"))
        linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2", d, d)
        norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        ffn(dst, f"{src}/ffn", dims.decoder_ffn_dim)

    proj = pool.tensor("decoder/projection/weight", (vocab, d))
    dims.tied = bool(np.array_equal(proj, sd[f"{dec}.embed_tokens.weight"]))
    if not dims.tied:
        sd["proj_out.weight"] = proj
    if pool.has("decoder/projection/bias"):
        if np.any(pool.tensor("decoder/projection/bias", (vocab,))):
            raise ConversionError("decoder/projection/bias is non-zero; transformers' Whisper proj_out has no bias")

    if pool.left:
        left = sorted(pool.left)
        more = f" (and {len(left) - 1} more)" if len(left) > 1 else ""
        raise ConversionError(f"model.bin has variable {left[0]}{more} that no Whisper parameter takes")
    return sd, dims


# ---------------------------------------------------------------------------------------------
# vocabulary, tokenizer and configs


def read_vocabulary(ct2_dir: Path) -> list[str]:
    """CTranslate2 looks for vocabulary.json (a list) first, then vocabulary.txt (one token a line)."""
    js, txt = ct2_dir / "vocabulary.json", ct2_dir / "vocabulary.txt"
    try:
        if js.is_file():
            tokens = json.loads(js.read_text(encoding="utf-8"))
            if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
                raise ConversionError(f"{js} is not a JSON list of strings")
            return tokens
        if txt.is_file():
            # split on "\n" only: str.splitlines would also break on unicode line separators
            tokens = txt.read_text(encoding="utf-8").split("\n")
            return tokens[:-1] if tokens and tokens[-1] == "" else tokens
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConversionError(f"cannot read the vocabulary in {ct2_dir}: {e}") from e
    raise ConversionError(f"{ct2_dir} has neither vocabulary.json nor vocabulary.txt")


@dataclass
class SpecialIds:
    """Ids of Whisper's control tokens, found by name in the vocabulary."""

    eot: int
    sot: int
    translate: int
    transcribe: int
    start_of_lm: int
    start_of_prev: int
    no_speech: int
    no_timestamps: int
    languages: dict[str, int]  # "<|en|>" -> id, the tokens between <|startoftranscript|> and <|translate|>


def special_ids(vocab: list[str], multilingual: bool) -> SpecialIds:
    index: dict[str, int] = {}
    for i, tok in enumerate(vocab):
        index.setdefault(tok, i)

    def find(*names: str) -> int:
        for n in names:
            if n in index:
                return index[n]
        raise ConversionError(f"the vocabulary has no {names[0]} token: is it a Whisper vocabulary?")

    ids = SpecialIds(find(EOT), find(SOT), find(TRANSLATE), find(TRANSCRIBE), find(START_OF_LM),
                     find(START_OF_PREV), find(*NO_SPEECH), find(NO_TIMESTAMPS), {})
    # OpenAI's two BPEs: GPT-2's (50256 text tokens, English-only models) and the multilingual one (50257).
    want_eot = 50257 if multilingual else 50256
    if ids.eot != want_eot:
        kind = "multilingual" if multilingual else "English-only"
        raise ConversionError(f"vocabulary size {len(vocab)} means an {kind} Whisper, whose {EOT} id is "
                              f"{want_eot}, but this vocabulary has it at {ids.eot}")
    ids.languages = {vocab[i]: i for i in range(ids.sot + 1, ids.translate)}
    bad = [t for t in ids.languages if not _LANGUAGE.fullmatch(t)]
    if bad:
        raise ConversionError(f"vocabulary token {bad[0]!r} sits among the language tokens")
    return ids


def build_tokenizer_json(ct2_dir: Path, vocab: list[str]) -> str:
    """tokenizer.json text whose ids are exactly the model's vocabulary.

    faster-whisper's tokenizer.json often stops at <|notimestamps|>; the timestamp tokens <|0.00|> ...
    <|30.00|> that the vocabulary (and the embedding matrix) has after it are appended as added tokens,
    as in OpenAI's current Hugging Face tokenizers, so that len(tokenizer) equals the vocabulary size.
    """
    from tokenizers import Tokenizer

    path = ct2_dir / "tokenizer.json"
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        tok = Tokenizer.from_str(json.dumps(spec))
    except FileNotFoundError as e:
        raise ConversionError(f"{ct2_dir} has no tokenizer.json (copy the model's Hugging Face tokenizer.json "
                              "there, as ct2-transformers-converter --copy_files tokenizer.json does)") from e
    except Exception as e:  # json, OSError or a tokenizers error: all mean "unusable"
        raise ConversionError(f"cannot load {path}: {e}") from e
    n = tok.get_vocab_size(with_added_tokens=True)
    if n > len(vocab):
        raise ConversionError(f"{path} has {n} tokens, more than the model's vocabulary of {len(vocab)}")
    for i in range(n, len(vocab)):
        if not _TIMESTAMP.fullmatch(vocab[i]):
            raise ConversionError(f"vocabulary token {i} ({vocab[i]!r}) is not in {path} and is not a timestamp")
        spec.setdefault("added_tokens", []).append({"id": i, "content": vocab[i], "single_word": False,
                                                    "lstrip": False, "rstrip": False, "normalized": True,
                                                    "special": False})
    tok = Tokenizer.from_str(json.dumps(spec))
    for i, expected in enumerate(vocab):
        got = tok.id_to_token(i)
        if got != expected:
            raise ConversionError(f"{path} and the vocabulary disagree at id {i}: {got!r} vs {expected!r}")
    return json.dumps(spec, ensure_ascii=False, indent=2)


def read_ct2_config(ct2_dir: Path) -> dict:
    path = ct2_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ConversionError(f"{ct2_dir} has no config.json (suppress_ids, alignment_heads...)") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConversionError(f"cannot read {path}: {e}") from e
    if not isinstance(config, dict):
        raise ConversionError(f"{path} is not a JSON object")
    if config.get("quantization_type") not in (None, 0):
        raise ConversionError(f"{path} declares quantization_type {config['quantization_type']} (AWQ); "
                              "only float CTranslate2 models convert")
    return config


def _int_list(config: dict, key: str, vocab_size: int) -> list[int] | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int) and 0 <= v < vocab_size for v in value):
        raise ConversionError(f"config.json {key} must be a list of token ids below {vocab_size}")
    return list(value)


def _alignment_heads(config: dict, dims: WhisperDims) -> list[list[int]]:
    value = config.get("alignment_heads")
    if value is None:  # what CTranslate2's converter uses when none is known: the later half of the layers
        half = dims.decoder_layers // 2
        return [[layer, h] for layer in range(half, dims.decoder_layers) for h in range(dims.decoder_attention_heads)]
    ok = isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and 0 <= p[0] < dims.decoder_layers
        and 0 <= p[1] < dims.decoder_attention_heads for p in value
    )
    if not ok:
        raise ConversionError("config.json alignment_heads must be [layer, head] pairs within the decoder")
    return [list(p) for p in value]


def hf_configs(
    dims: WhisperDims, ids: SpecialIds, multilingual: bool, config: dict
) -> tuple[WhisperConfig, GenerationConfig]:
    """(WhisperConfig, GenerationConfig) laid out as in OpenAI's checkpoints on the Hugging Face hub (long on
    purpose: a table of config fields).

    English-only models get no lang_to_id/task_to_id: transformers' generate() runs language detection
    whenever lang_to_id exists, which would put a language token into a .en model's prompt.
    """
    from transformers import GenerationConfig, WhisperConfig

    suppress = _int_list(config, "suppress_ids", dims.vocab_size)
    begin = _int_list(config, "suppress_ids_begin", dims.vocab_size)
    if suppress is None:
        suppress = []
    if begin is None:
        begin = [220, ids.eot]
    if multilingual and config.get("lang_ids") is not None:
        if sorted(config["lang_ids"]) != sorted(ids.languages.values()):
            log.warning("config.json lang_ids differ from the vocabulary's language tokens; using the vocabulary's")
    # OpenAI's checkpoints all say bos_token_id 50257: <|endoftext|> in the multilingual vocabulary,
    # <|startoftranscript|> in the English one. Generation starts from decoder_start_token_id either way.
    bos = ids.eot if multilingual else ids.sot
    model_config = WhisperConfig(
        vocab_size=dims.vocab_size,
        num_mel_bins=dims.num_mel_bins,
        d_model=dims.d_model,
        encoder_layers=dims.encoder_layers,
        decoder_layers=dims.decoder_layers,
        encoder_attention_heads=dims.encoder_attention_heads,
        decoder_attention_heads=dims.decoder_attention_heads,
        encoder_ffn_dim=dims.encoder_ffn_dim,
        decoder_ffn_dim=dims.decoder_ffn_dim,
        max_source_positions=dims.max_source_positions,
        max_target_positions=dims.max_target_positions,
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=dims.tied,
        pad_token_id=ids.eot,
        bos_token_id=bos,
        eos_token_id=ids.eot,
        decoder_start_token_id=ids.sot,
        # token suppression lives in the generation config only: transformers warns about (and will
        # refuse) generation parameters in the model config that differ from WhisperConfig's defaults
        suppress_tokens=None,
        begin_suppress_tokens=None,
    )
    model_config.architectures = ["WhisperForConditionalGeneration"]
    gen = {
        "alignment_heads": _alignment_heads(config, dims),
        "begin_suppress_tokens": begin,
        "bos_token_id": bos,
        "decoder_start_token_id": ids.sot,
        "eos_token_id": ids.eot,
        "pad_token_id": ids.eot,
        "forced_decoder_ids": None,
        "is_multilingual": multilingual,
        "max_initial_timestamp_index": 50,
        "max_length": dims.max_target_positions,
        "no_timestamps_token_id": ids.no_timestamps,
        "prev_sot_token_id": ids.start_of_prev,
        "return_timestamps": False,
        "suppress_tokens": suppress,
    }
    if multilingual:
        gen["lang_to_id"] = dict(ids.languages)
        gen["task_to_id"] = {"transcribe": ids.transcribe, "translate": ids.translate}
    return model_config, GenerationConfig(**gen)


# ---------------------------------------------------------------------------------------------
# the conversion


@dataclass
class ConversionResult:
    """What was converted: for the CLI's summary and for callers that want to check it."""

    out_dir: Path
    dims: WhisperDims
    multilingual: bool
    stored_dtypes: list[str]
    n_variables: int
    n_aliases: int


def _check_against_transformers(sd: dict[str, np.ndarray], model_config: WhisperConfig) -> None:
    """Every parameter of transformers' model is filled, with its shape, and nothing else is given."""
    import torch
    from transformers import WhisperForConditionalGeneration

    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in WhisperForConditionalGeneration(model_config).state_dict().items()}
    if model_config.tie_word_embeddings:
        expected.pop("proj_out.weight", None)
    missing = sorted(set(expected) - set(sd))
    extra = sorted(set(sd) - set(expected))
    if missing:
        raise ConversionError(f"no model.bin variable fills transformers' parameter {missing[0]}")
    if extra:
        raise ConversionError(f"transformers' Whisper has no parameter {extra[0]}")
    for k, shape in expected.items():
        if tuple(sd[k].shape) != shape:
            raise ConversionError(f"{k} would get shape {list(sd[k].shape)}, transformers expects {list(shape)}")


def convert_ct2_whisper(ct2_dir: str | Path, out_dir: str | Path) -> ConversionResult:
    """Convert the CTranslate2 Whisper directory `ct2_dir` into a new transformers checkpoint `out_dir`.

    Everything is read and checked before anything is written; the files are written to a temporary
    directory beside `out_dir` and renamed into place at the end, so a failure leaves no `out_dir`.
    """
    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    if not ct2_dir.is_dir():
        raise ConversionError(f"{ct2_dir} is not a directory")
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ConversionError(f"{out_dir} already exists and is not an empty directory; not overwriting it")

    model = read_model_bin(ct2_dir / "model.bin")
    sd, dims = ct2_to_state_dict(model)
    vocab = read_vocabulary(ct2_dir)
    if len(vocab) != dims.vocab_size:
        raise ConversionError(f"the vocabulary has {len(vocab)} tokens but decoder/embeddings/weight has "
                              f"{dims.vocab_size} rows")
    if dims.vocab_size not in (51864, 51865, 51866):
        raise ConversionError(f"vocabulary size {dims.vocab_size} is not one of OpenAI Whisper's (51864 English-only, "
                              "51865/51866 multilingual)")
    multilingual = dims.vocab_size >= 51865
    ids = special_ids(vocab, multilingual)
    tokenizer_json = build_tokenizer_json(ct2_dir, vocab)
    model_config, gen_config = hf_configs(dims, ids, multilingual, read_ct2_config(ct2_dir))
    _check_against_transformers(sd, model_config)

    with atomic_dir(out_dir) as tmp:  # out_dir is absent or empty (checked above)
        _write(tmp, sd, model_config, gen_config, tokenizer_json, ids, dims)
        _set_default_permissions(tmp)
    stored = sorted({v.dtype for v in model.variables.values() if v.array.ndim > 0})
    return ConversionResult(out_dir, dims, multilingual, stored, len(model.variables), len(model.aliases))


def _set_default_permissions(directory: Path) -> None:
    """mkdtemp makes a 0700 directory (and safetensors 0600 files): give them the umask's usual modes."""
    umask = os.umask(0)
    os.umask(umask)
    directory.chmod(0o777 & ~umask)
    for f in directory.iterdir():
        f.chmod(0o666 & ~umask)


def _write(tmp: Path, sd: dict[str, np.ndarray], model_config: WhisperConfig, gen_config: GenerationConfig,
           tokenizer_json: str, ids: SpecialIds, dims: WhisperDims) -> None:
    from safetensors.numpy import save_file
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizerFast

    model_config.save_pretrained(tmp)
    gen_config.save_pretrained(tmp)
    save_file(sd, str(tmp / "model.safetensors"), metadata={"format": "pt"})

    staging = tmp / ".tokenizer"
    staging.mkdir()
    (staging / "tokenizer.json").write_text(tokenizer_json, encoding="utf-8")
    specials = sorted([ids.eot, ids.sot, *ids.languages.values(), ids.translate, ids.transcribe,
                       ids.start_of_lm, ids.start_of_prev, ids.no_speech, ids.no_timestamps])
    spec = json.loads(tokenizer_json)
    token_of = {i: t for t, i in spec["model"]["vocab"].items()} | {t["id"]: t["content"] for t in spec["added_tokens"]}
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(staging / "tokenizer.json"),
        unk_token=EOT, bos_token=EOT, eos_token=EOT, pad_token=EOT,  # as OpenAI's tokenizers on the hub
        additional_special_tokens=[token_of[i] for i in specials],
        model_max_length=1024,
    )
    if len(tokenizer) != dims.vocab_size:
        raise ConversionError(f"the tokenizer has {len(tokenizer)} tokens, the model {dims.vocab_size}")
    extractor = WhisperFeatureExtractor(feature_size=dims.num_mel_bins)
    WhisperProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(tmp)
    shutil.rmtree(staging)
