"""What `python -m src.train` does: build model and data from the config, train, save."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from src.config import typed
from src.data.languages import language_token
from src.data.loading import build_source, loader_config, make_loader
from src.data.text import token_id
from src.evaluation.run import evaluate_model, rescore_split
from src.models.backbone import load_whisper
from src.models.moe import moe_layers
from src.models.router_losses import MoELoss
from src.models.sd_moe import SpectralDecoupler
from src.models.toy import ensure_toy_model
from src.models.upcycling import STRATEGIES
from src.models.upcycling.convert import expert_similarity, strategy_config, upcycle_model
from src.models.upcycling.spri import ResidualSpectrum, SPRIConfig
from src.training.checkpoint import save_checkpoint
from src.training.distributed import init_distributed, is_sharded, shutdown
from src.training.trainer import Trainer
from src.utils.atomic import write_json
from src.utils.cli import run_dir_of, seed_everything
from src.utils.errors import UserError

log = logging.getLogger(__name__)


def load_model(cfg: DictConfig):
    """(model, tokenizer) for `cfg.model`: a Whisper by name/path, or the cached toy model."""
    mcfg = typed("model", cfg)
    path = mcfg.name_or_path or ensure_toy_model(cfg)
    return load_whisper(path, pad_to_30s=mcfg.pad_to_30s, dtype=mcfg.dtype)


REPORT = "upcycling_report.json"


def calibration_batches(cfg: DictConfig, ucfg, model, tokenizer, source, examples: list
                        ) -> tuple[list[dict], list[dict]]:
    """(fit, held-out) batches of `upcycle.calibration_examples` examples drawn (by seed) from ``examples``;
    `upcycle.heldout_fraction` of them are held out for the report (none when fewer than 4 are drawn)."""
    n = int(ucfg.calibration_examples)
    if not examples or n <= 0 or not STRATEGIES[ucfg.strategy].is_moe:
        return [], []
    pick = torch.randperm(len(examples), generator=torch.Generator().manual_seed(int(cfg.seed)))[:n].tolist()
    n_held = int(len(pick) * ucfg.heldout_fraction) if len(pick) >= 4 else 0
    fit, held = pick[: len(pick) - n_held], pick[len(pick) - n_held:]

    def batches(idx: list[int]) -> list[dict]:
        if not idx:
            return []
        loader = make_loader([examples[i] for i in sorted(idx)], source, tokenizer, loader_config(cfg.data),
                             n_mels=model.config.num_mel_bins, pad_to_30s=typed("model", cfg).pad_to_30s,
                             shuffle=False)
        return [b for b in loader if "input_features" in b]

    return batches(fit), batches(held)


def upcycle(model, cfg: DictConfig, tokenizer, source, examples: list, report_dir: Path | None = None) -> dict:
    """Apply `cfg.upcycle` to a dense model (no-op for dense), calibrating on ``examples`` (training
    examples); writes upcycling_report.json into ``report_dir``."""
    ucfg = strategy_config(cfg.upcycle)
    calib, heldout = calibration_batches(cfg, ucfg, model, tokenizer, source, examples)
    report = upcycle_model(model, typed("moe", cfg), ucfg, int(cfg.seed), calib, progress=bool(cfg.progress),
                           heldout=heldout or None)
    if report_dir is not None:
        write_json(Path(report_dir) / REPORT, report)
    return report


def convert(cfg: DictConfig) -> dict:
    """Dense checkpoint -> upcycled MoE checkpoint in cfg.out (with its upcycling report)."""
    model, tokenizer = load_model(cfg)
    source = build_source(cfg.data)
    out = Path(cfg.out)
    report = upcycle(model, cfg, tokenizer, source, source.examples("train"))
    save_checkpoint(model, tokenizer, out)
    write_json(out / REPORT, report)
    return report


def moe_extensions(cfg: DictConfig, model, tokenizer, languages: list[str]) -> list:
    """The trainer extensions an MoE model needs: router regularisers + self-distillation, SD-MoE."""
    if not moe_layers(model):
        return []
    moe = typed("moe", cfg)
    ids = [token_id(tokenizer, language_token(c)) for c in languages] if tokenizer is not None else []
    out = [MoELoss.from_config(moe, languages, ids)]
    ucfg = strategy_config(cfg.upcycle)
    if isinstance(ucfg, SPRIConfig):
        out.append(ResidualSpectrum(ucfg.stage1_update))
    if moe.sd.rank > 0:
        out.append(SpectralDecoupler(moe.sd))
    return out


def record_spectra_after_training(model, report: dict, run_dir: Path) -> None:
    """Adds each MoE layer's inter-expert similarity after training to the upcycling report."""
    after = {}
    for name, moe in moe_layers(model):
        cos, overlap = expert_similarity(moe)
        after[name] = {"expert_cosine_mean": cos, "subspace_overlap": overlap}
    if after:
        report["after_training"] = after
        write_json(Path(run_dir) / REPORT, report)


def last_checkpoint(run_dir: Path, tcfg) -> Path:
    return Path(run_dir) / "checkpoints" / tcfg.stages[-1].name


def train(cfg: DictConfig) -> dict:
    run_dir = run_dir_of(cfg)
    tcfg = typed("trainer", cfg)
    info = init_distributed(tcfg.device)  # torchrun / accelerate: one process per GPU, one run dir for all
    model, tokenizer = load_model(cfg)
    seed_everything(int(cfg.seed))  # the same random stream whether or not the toy model was just pretrained
    source = build_source(cfg.data)
    train_ex, dev_ex = source.examples("train"), source.examples("dev")
    if not train_ex:
        raise UserError(f"no usable training examples (skipped: {source.skips.as_dict()}); check data.root")
    log.info("data: %d train / %d dev examples over %d directions", len(train_ex), len(dev_ex), len(source.directions))
    lcfg = loader_config(cfg.data)
    kw = {"n_mels": model.config.num_mel_bins, "pad_to_30s": typed("model", cfg).pad_to_30s}
    train_loader = make_loader(train_ex, source, tokenizer, lcfg, shuffle=True, seed=int(cfg.seed),
                               num_replicas=info.world_size, rank=info.rank, **kw)
    dev_loader = make_loader(dev_ex, source, tokenizer, lcfg, shuffle=False, **kw) if dev_ex else None
    # Every rank upcycles identically (seeded); only rank 0 writes files and logs.
    report = upcycle(model, cfg, tokenizer, source, train_ex, run_dir if info.is_main else None)
    log.info("model: %s, %s total / %s active parameters", report["strategy"], f"{report['total_parameters']:,}",
             f"{report['active_parameters']:,}")
    logger = hydra.utils.instantiate(cfg.logger) if info.is_main else None
    if logger is not None:
        logger.start(run_dir, OmegaConf.to_container(cfg, resolve=True))
    trainer = Trainer(model, tokenizer, tcfg, run_dir, train_loader, dev_loader,
                      logger=logger, skips=source.skips,
                      extensions=moe_extensions(cfg, model, tokenizer, list(source.directions)))
    tables: dict = {}
    try:
        history = trainer.fit()
        shutdown()  # the ranks are done together (fit checked their weights agree); rank 0 evaluates alone
        if info.is_main and is_sharded(model):  # FSDP left rank 0 a shard: evaluate the saved whole model
            model, _ = load_whisper(last_checkpoint(run_dir, tcfg), pad_to_30s=kw["pad_to_30s"],
                                    dtype=typed("model", cfg).dtype)
        if info.is_main:
            record_spectra_after_training(model, report, run_dir)
            tables = evaluate_model(model, tokenizer, source, typed("eval", cfg), run_dir, lcfg, kw["pad_to_30s"],
                                    progress=bool(cfg.progress), logger=logger)
    finally:
        if logger is not None:
            logger.finish()
    last = last_checkpoint(run_dir, tcfg)
    summary = {"run_dir": str(run_dir), "checkpoint": str(last), "stages": history,
               "train_examples": len(train_ex), "dev_examples": len(dev_ex), "skipped": source.skips.as_dict(),
               "results": {split: table[-1] for split, table in tables.items()}, "processes": info.world_size}
    if info.is_main:
        source.skips.log_summary(log)
        source.skips.save(run_dir / "skipped.json")
        write_json(Path(run_dir) / "train_summary.json", summary, default=str)
        log.info("checkpoint: %s", last)
    return summary


def evaluate(cfg: DictConfig) -> dict:
    """`python -m src.evaluate`: a run dir's final checkpoint and data, or checkpoint= plus data overrides;
    with rescore=true only the saved hypotheses are rescored."""
    ecfg = typed("eval", cfg)
    if cfg.run_dir:
        out = Path(cfg.run_dir)
        if not (out / "config.yaml").exists():
            raise FileNotFoundError(f"{out / 'config.yaml'} not found: run_dir must be a training run dir")
        run_cfg = OmegaConf.load(out / "config.yaml")
        summary = out / "train_summary.json"
        ckpt = cfg.checkpoint or (json.loads(summary.read_text())["checkpoint"] if summary.exists() else None)
        data_cfg, pad_to_30s = run_cfg.data, bool(run_cfg.model.pad_to_30s)
    else:
        if not cfg.checkpoint:
            raise UserError("set run_dir=DIR (a training run) or checkpoint=DIR (a model directory)")
        out, ckpt = run_dir_of(cfg), cfg.checkpoint
        data_cfg, pad_to_30s = cfg.data, typed("model", cfg).pad_to_30s
    if cfg.rescore:
        return {split: rescore_split(out / "eval" / split, ecfg, split=split) for split in ecfg.splits}
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint recorded in {out}; pass checkpoint=DIR")
    model, tokenizer = load_whisper(ckpt, pad_to_30s=pad_to_30s)
    source = build_source(data_cfg)
    tables = evaluate_model(model, tokenizer, source, ecfg, out, loader_config(data_cfg), pad_to_30s,
                            progress=bool(cfg.progress))
    source.skips.log_summary(log)
    return tables
