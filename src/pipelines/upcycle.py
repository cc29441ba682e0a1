"""The upcycle job: a dense Whisper into an MoE by the configured strategy (`python -m src.upcycle`), and the
upcycling step the train job runs before training."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from src.config import typed
from src.data.loading import build_source
from src.models.upcycling.upcycle import strategy_config, upcycle_model
from src.pipelines.builders import calibration_batches, load_model
from src.training.checkpoint import save_checkpoint
from src.utils.atomic import write_json

REPORT = "upcycling_report.json"


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


def upcycle_checkpoint(cfg: DictConfig) -> dict:
    """Dense checkpoint -> upcycled MoE checkpoint in cfg.out (with its upcycling report)."""
    model, tokenizer = load_model(cfg)
    source = build_source(cfg.data)
    out = Path(cfg.out)
    report = upcycle(model, cfg, tokenizer, source, source.examples("train"))
    save_checkpoint(model, tokenizer, out)
    write_json(out / REPORT, report)
    return report
