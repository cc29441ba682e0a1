"""Builders the tests share (a tiny Whisper, synthetic batches, an upcycled model, the tiny toy-run overrides,
the loaders and decoding of the real-model tests).

A module of helpers, not of tests: test modules import from here, never from each other.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf
from transformers import WhisperConfig, WhisperForConditionalGeneration

from src.data.config import LoaderConfig
from src.data.features import N_FRAMES_30S
from src.data.loading import make_loader
from src.data.text import IGNORE_INDEX
from src.evaluation.config import DecodeConfig
from src.evaluation.generation import decode
from src.models.backbone import set_pad_to_30s
from src.models.config import MoEConfig
from src.models.upcycling import STRATEGIES
from src.models.upcycling.apply import upcycle
from src.models.upcycling.config import strategy_config

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = str(ROOT / "conf")

# The real entry points on a tiny toy corpus and model (seconds, not minutes): conf/experiment/tiny.yaml, and the
# tests' step budget and decoding.
TINY = [
    "experiment=tiny",
    "trainer.total_steps=40", "trainer.stages.0.warmup_steps=5", "trainer.stages.0.lr=3e-3",
    "eval.beam=2", "eval.max_new_tokens=200", "eval.comet.model=null",
    "trainer.log_every=5", "progress=false",
]

MOE = MoEConfig(num_experts=4, top_k=2)


def run(module: str, args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """`python -m module args` in a child process; asserts exit 0 (showing stderr's tail otherwise)."""
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def tiny_whisper() -> WhisperForConditionalGeneration:
    torch.manual_seed(0)
    cfg = WhisperConfig(vocab_size=64, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, num_mel_bins=80,
                        max_source_positions=1500, max_target_positions=32, pad_token_id=0,
                        decoder_start_token_id=1, eos_token_id=0, bos_token_id=0, suppress_tokens=[])
    return WhisperForConditionalGeneration(cfg).eval()


def batches(n: int = 4, bs: int = 2, seed: int = 0) -> list[dict]:
    """Training batches for tiny_whisper: random features, 6-token targets, labels shifted by one."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        dec = torch.randint(2, 60, (bs, 6), generator=g)
        labels = dec.roll(-1, dims=1)
        labels[:, -1] = IGNORE_INDEX
        out.append({"input_features": torch.randn(bs, 80, 64, generator=g), "decoder_input_ids": dec,
                    "decoder_attention_mask": torch.ones_like(dec), "labels": labels, "skipped": []})
    return out


def ucfg(strategy: str, **kw):
    return strategy_config(OmegaConf.create({"strategy": strategy, **kw}))


def calib_batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    dec = torch.randint(2, 60, (2, 5), generator=g)
    mask = torch.ones_like(dec)
    mask[1, 3:] = 0
    return {"input_features": torch.randn(2, 80, 64, generator=g), "decoder_input_ids": dec,
            "decoder_attention_mask": mask, "feature_lengths": torch.tensor([64, 40])}


def biased_tiny_whisper() -> WhisperForConditionalGeneration:
    """tiny_whisper, unpadded, with non-zero biases (so copying and re-initialising them is visible)."""
    model = tiny_whisper()
    set_pad_to_30s(model, False)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(".bias"):
                p.normal_(0.0, 0.1, generator=torch.Generator().manual_seed(len(n)))
    return model


def upcycled(strategy: str, moe: MoEConfig = MOE, device: str = "cpu", **kw):
    """biased_tiny_whisper upcycled by ``strategy`` on ``device``: (model, dense weights, report)."""
    model, dense, result = upcycling(strategy, moe, device, **kw)
    return model, dense, result.report


def upcycling(strategy: str, moe: MoEConfig = MOE, device: str = "cpu", **kw):
    """As `upcycled`, with the whole outcome: (model, dense weights, Upcycled: report and the strategy's trainer
    extensions)."""
    model = biased_tiny_whisper().to(device)
    dense = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = {k: v.to(device) for k, v in calib_batch().items()}
    result = upcycle(model, moe, ucfg(strategy, **kw), seed=0, calib=[batch], progress=False)
    return model, dense, result


class Crashing(list):
    """A loader that dies after `limit` batches, like a killed job."""

    def __init__(self, items, limit):
        super().__init__(items)
        self.limit, self.drawn = limit, 0

    def __iter__(self):
        for b in super().__iter__():
            self.drawn += 1
            if self.drawn > self.limit:
                raise KeyboardInterrupt("simulated crash")
            yield b


# --------------------------------------------------------------------------------------------
# real pretrained Whispers (tests/models/test_real_whisper*.py): `english` is the (source, examples) fixture
# of tests/models/conftest.py; `examples` picks other examples of the same source (a subset, translations)

MOE_STRATEGIES = sorted(name for name, s in STRATEGIES.items() if s.facts.is_moe)
EVERY_FFN = dict(num_experts=4, top_k=2, where="both", every=1)


def english_loader(english, tokenizer, pad_to_30s: bool = True, examples: list | None = None):
    source, default = english
    return make_loader(default if examples is None else examples, source, tokenizer,
                       LoaderConfig(max_batch_frames=6 * N_FRAMES_30S), n_mels=80, pad_to_30s=pad_to_30s, shuffle=False)


def greedy(model, tokenizer, english, pad_to_30s: bool = True, examples: list | None = None,
           max_new_tokens: int = DecodeConfig.max_new_tokens) -> dict[str, str]:
    """The project's decoding path (prompt per example: transcribe for English, else translate), greedy.
    Pretrained Whisper reading unpadded clips often repeats itself up to the token limit: cap it there."""
    return decode(model, tokenizer, english_loader(english, tokenizer, pad_to_30s, examples),
                  DecodeConfig(greedy=True, max_new_tokens=max_new_tokens), progress=False)


def calibration(english, tokenizer, examples: list | None = None) -> list[dict]:
    return [b for b in english_loader(english, tokenizer, pad_to_30s=False, examples=examples) if "input_features" in b]


def short_form_copy(model):
    """A copy that reads unpadded clips (calibration costs a tenth of 30 s padding)."""
    out = copy.deepcopy(model)
    set_pad_to_30s(out, False)
    return out


def make_cfg(overrides: list[str] | None = None, tmp: Path | None = None):
    """The composed config (Hydra's compose API) with its output dir at ``tmp``, as an entry point sees it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    import src.config  # noqa: F401  (the resolvers, and each group's schema in Hydra's ConfigStore)

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=overrides or [], return_hydra_config=True)
        HydraConfig().set_config(cfg)
        with open_dict(cfg):
            cfg.paths.output_dir = str(tmp or "/tmp/upcycle-st-test")
            cfg.paths.root_dir = str(Path(CONF_DIR).parent)
            del cfg["hydra"]
        return cfg
