"""The upcycle job: a dense Whisper into an MoE by the configured strategy (`python -m src.upcycle`), and the
upcycling step the train job runs before training."""

from __future__ import annotations

from pathlib import Path

from src.config import RunSettings
from src.data.loading import build_source
from src.evaluation.records import UpcyclingReport
from src.models.upcycling import apply
from src.pipelines.builders import budget_task, calibration_batches, calibration_task, load_model
from src.training.checkpoint import save_checkpoint
from src.utils.extension import TrainerExtension


def upcycle(model, run: RunSettings, tokenizer, source, examples: list,
            report_dir: Path | None = None) -> tuple[UpcyclingReport, list[TrainerExtension]]:
    """Apply `upcycle` to a dense model (no-op for dense), calibrating on ``examples`` (training
    examples); writes upcycling_report.json into ``report_dir``. Returns the report and the strategy's trainer
    extensions (holding what its init handed them)."""
    batches = calibration_batches(run, model, tokenizer, source, examples)
    upcycled = apply.upcycle(model, run.moe, run.upcycle, run.seed, batches["fit"], progress=run.progress,
                             heldout=batches["heldout"] or None, budget=batches.get("budget"),
                             budget_heldout=batches.get("budget_heldout") or None)
    report = UpcyclingReport.from_dict(upcycled.report)
    if batches["fit"]:
        report.calibration_task = calibration_task(run.upcycle, tokenizer)
        report.budget_task = budget_task(run, tokenizer)
    if report_dir is not None:
        report.write(report_dir)
    return report, upcycled.extensions


def upcycle_checkpoint(run: RunSettings) -> UpcyclingReport:
    """Dense checkpoint -> upcycled MoE checkpoint in `out` (with its upcycling report)."""
    model, tokenizer, _ = load_model(run)
    source = build_source(run.data)
    out = run.out
    report, _ = upcycle(model, run, tokenizer, source, source.examples("train"))
    save_checkpoint(model, tokenizer, out)
    report.write(out)
    return report
