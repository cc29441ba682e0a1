"""Build a tiny but real COMET checkpoint, offline, for tests.

``build_tiny_comet(out_dir)`` writes a ``comet.models.RegressionMetric`` with a randomly initialised (seeded) 2-layer
XLM-RoBERTa encoder of width 32 and a hand-built Unigram tokenizer, in the layout ``comet.load_from_checkpoint``
expects::

    out_dir/
        hparams.yaml            # read by comet.load_from_checkpoint (class_identifier, ...)
        checkpoints/model.ckpt  # Lightning checkpoint: state_dict + hyper_parameters (path returned)
        encoder/                # the "pretrained_model" the encoder is rebuilt from: config + tokenizer, no weights
            config.json
            tokenizer.json
            tokenizer_config.json
            special_tokens_map.json

Nothing touches the network: the tokenizer is built from a fixed in-code vocabulary (no training, no sentencepiece
download), the encoder config is written locally, and the checkpoint is loaded with ``load_pretrained_weights=False``
(which ``comet.load_from_checkpoint`` always passes), so transformers only reads ``encoder/`` from disk. The encoder
path is stored as an absolute path in the hparams, so the built directory must not be moved after building.
"""

from __future__ import annotations

import string
from pathlib import Path

import torch
import yaml

ENCODER_DIR = "encoder"
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0..3, as in XLM-R
MASK = "<mask>"
WORDS = (
    "the a an of and to in is it that for on with as was by at from this be are or not have has had his her "
    "cat dog bird birds house book park dinner tonight friend teacher reads runs sleeps sing cooks rains "
    "der die das und ist ein eine nicht mit von zu den im auf sich es ich du er sie wir ihr katze hund haus buch "
    "le la les et est un une de du des en il elle nous vous ils"
).split()


def _build_tokenizer(save_dir: Path) -> int:
    """Save an XLMRobertaTokenizerFast backed by a fixed Unigram vocabulary; return the vocabulary size."""
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram
    from transformers import XLMRobertaTokenizerFast

    chars = string.ascii_letters + string.digits + string.punctuation
    pieces = ["▁"] + [f"▁{c}" for c in chars] + list(chars) + [f"▁{w}" for w in WORDS]
    pieces = list(dict.fromkeys(pieces))  # de-duplicate, keep order
    vocab = [(tok, 0.0) for tok in SPECIALS]
    vocab += [(p, -2.0 if len(p) > 2 else -8.0) for p in pieces]  # prefer whole words over characters
    vocab.append((MASK, 0.0))

    tok = Tokenizer(Unigram(vocab, unk_id=SPECIALS.index("<unk>"), byte_fallback=False))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    tok.post_processor = processors.RobertaProcessing(sep=("</s>", 2), cls=("<s>", 0))
    hf_tok = XLMRobertaTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=MASK,
        model_max_length=512,
    )
    hf_tok.save_pretrained(str(save_dir))
    return len(vocab)


def build_tiny_comet(out_dir: Path, seed: int = 0) -> Path:
    """Build a tiny COMET RegressionMetric under ``out_dir``; return the path of ``checkpoints/model.ckpt``.

    The weights are drawn under ``torch.manual_seed(seed)`` inside a forked RNG (the caller's global RNG state is
    left untouched), so two builds with the same seed give identical checkpoints and scores.
    """
    import pytorch_lightning as ptl
    from comet.models import RegressionMetric
    from transformers import XLMRobertaConfig

    out_dir = Path(out_dir).resolve()
    enc_dir = out_dir / ENCODER_DIR
    ckpt_dir = out_dir / "checkpoints"
    enc_dir.mkdir(parents=True, exist_ok=True)
    ckpt_dir.mkdir(parents=True, exist_ok=True)

    vocab_size = _build_tokenizer(enc_dir)
    XLMRobertaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,  # comet's max_positions = 514 - 2 = 512, as for real XLM-R
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    ).save_pretrained(str(enc_dir))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = RegressionMetric(
            nr_frozen_epochs=0,
            keep_embeddings_frozen=True,
            encoder_model="XLM-RoBERTa",
            pretrained_model=str(enc_dir),
            pool="avg",
            layer="mix",
            layer_transformation="softmax",
            layer_norm=True,
            dropout=0.1,
            batch_size=8,
            hidden_sizes=[64, 32],
            activations="Tanh",
            final_activation=None,
            load_pretrained_weights=False,
            local_files_only=True,
        )

    hparams = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.hparams).items()}
    hparams["class_identifier"] = "regression_metric"
    checkpoint = {
        "pytorch-lightning_version": ptl.__version__,
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "hyper_parameters": hparams,
    }
    ckpt_path = ckpt_dir / "model.ckpt"
    torch.save(checkpoint, ckpt_path)
    with open(out_dir / "hparams.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(hparams, f, sort_keys=True)
    return ckpt_path
