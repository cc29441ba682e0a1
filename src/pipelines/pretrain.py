"""The toy pretraining job: the dense toy Whisper (tokenizer trained on the toy text, model pretrained on the toy
English ASR split and its translations), cached by a hash of everything that defines it so a fresh machine needs
no manual step. `python -m src.pretrain` runs it alone; the train pipeline runs it on first use."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import torch
from transformers import WhisperForConditionalGeneration, WhisperTokenizerFast

from src.data.config import DataConfig
from src.data.loading import build_source, make_loader
from src.data.text import EOT, TASK_TOKENS, token_id, train_toy_tokenizer
from src.models.backbone import set_pad_to_30s, toy_config
from src.models.config import ToyArch
from src.training.config import PretrainRecipe, StageConfig, TrainerConfig
from src.training.ctc import CTCAuxLoss
from src.training.distributed import dist_info, shutdown
from src.training.loggers import ConsoleLogger
from src.training.trainer import Trainer
from src.utils.atomic import install_dir
from src.utils.errors import UserError, user_errors
from src.utils.runlock import exclusive

log = logging.getLogger(__name__)


ROOT = Path(__file__).resolve().parents[2]
# The code that makes the toy corpus and the toy model (files, or folders of .py files, under ROOT): a change
# to any of it gives the model a new cache key, so a table never mixes models made by different code.
PRETRAIN_SOURCES = ("src/data", "src/models/backbone.py", "src/training", "src/pipelines/pretrain.py")


# Data settings that do not change the pretrained model (where files live, how much is printed, how bad rows
# are reported); data.loader counts only for its padding and target lengths (pretraining sets its own batch
# sizes).
# Not keyed: what pretraining never reads. max_train_per_direction picks the fine-tuning subset (pretraining
# reads the whole corpus), so a data-constrained regime (experiment=toy_constrained) fine-tunes the same model.
UNKEYED_DATA = ("_target_", "cache_dir", "progress", "on_bad_example", "check_audio", "max_train_per_direction")


def code_hash(sources: tuple[str | Path, ...] = PRETRAIN_SOURCES, root: Path = ROOT) -> str:
    """A digest of the source files (path and bytes) under ``sources``."""
    digest = hashlib.sha1()
    files = set()
    for src in sources:
        path = root / src
        files.update(path.rglob("*.py") if path.is_dir() else [path])
    # regular files only, none hidden (an editor's `.#trainer.py` lock link is no source)
    files = {f for f in files if f.is_file() and not any(p.startswith(".") for p in f.relative_to(root).parts)}
    for f in sorted(files):
        digest.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def toy_model_dir(arch: ToyArch, recipe: PretrainRecipe, data: DataConfig, cache_dir: str,
                  sources: tuple[str | Path, ...] = PRETRAIN_SOURCES, root: Path = ROOT) -> Path:
    """<cache>/whisper_toy/<key>: the key hashes the architecture, the pretraining recipe (its seed too), the
    data settings that shape pretraining (the corpus, directions, subsets, durations, target and padding
    lengths; not the fine-tuning batch size), the code that makes the corpus and the model, and the torch and
    transformers versions."""
    if not data.is_toy:
        raise UserError(
            "model=whisper_toy is pretrained on the toy corpus and needs data=toy; for real CoVoST2 use a "
            "pretrained Whisper (model=whisper_small, or model.name_or_path=DIR)"
        )
    import transformers

    node = data.node()
    loader = node["loader"]
    shaping = {k: v for k, v in node.items() if k not in UNKEYED_DATA and k != "loader"}
    shaping["loader"] = {k: v for k, v in loader.items() if k in ("pad_multiple", "max_target_tokens")}
    used = replace(recipe, processes=pretrain_processes(recipe))  # one process on a GPU: another model
    key = {"toy": asdict(arch), "pretrain": asdict(used), "data": shaping,
           "code": code_hash(sources, root), "torch": torch.__version__, "transformers": transformers.__version__}
    tag = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(cache_dir).expanduser() / "whisper_toy" / f"seed{recipe.seed}-{tag}"


@contextlib.contextmanager
def cpu_threads(n: int | None):
    """torch's intra-op threads set to ``n`` inside the block (None: unchanged), restored afterwards."""
    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def ensure_toy_model(arch: ToyArch, recipe: PretrainRecipe, data: DataConfig, cache_dir: str,
                     progress: bool = True, force: bool = False) -> Path:
    """Path of the pretrained toy model (``arch`` pretrained by ``recipe`` on the toy corpus of ``data``),
    pretraining it first when it is not cached."""
    out = toy_model_dir(arch, recipe, data, cache_dir)
    with exclusive(out.with_suffix(".lock")):
        if (out / "model.safetensors").exists() and not force:
            return out
        log.info("pretraining the dense toy model into %s (once; cached afterwards)", out)
        pretrain_toy(arch, recipe, data, out, progress)
    return out


@contextmanager
def standard_start_method() -> Iterator[None]:
    """Spawn children under the standard `spawn` start method. A worker of Hydra's joblib launcher (loky) has
    'loky' as its process-wide start method, which a spawned child cannot set (`cannot find context for 'loky'`:
    every multi-seed pretraining failed so); the worker's own method is restored afterwards."""
    current = multiprocessing.get_start_method(allow_none=True)
    if current is None or current in multiprocessing.get_all_start_methods():
        yield
        return
    multiprocessing.set_start_method("spawn", force=True)
    try:
        yield
    finally:
        multiprocessing.set_start_method(current, force=True)


def pretrain_toy(arch: ToyArch, recipe: PretrainRecipe, data: DataConfig, out: Path, progress: bool = True) -> dict:
    """Train the toy tokenizer and pretrain the toy model into ``out`` (a `.work` run dir beside it, whose finished
    model is installed whole: utils.atomic.install_dir);
    on the CPU in `recipe.processes` data-parallel processes."""
    source, train, dev, texts = _pretrain_data(data)
    work = out.with_name(out.name + ".work")
    shutil.rmtree(work, ignore_errors=True)
    tokenizer = train_toy_tokenizer(texts, work / "tokenizer", recipe.vocab_size)  # also creates `work`
    procs = pretrain_processes(recipe)
    if procs == 1:
        _pretrain_rank(0, 1, arch, recipe, data, work, progress, prepared=(source, train, dev, tokenizer))
    else:
        log.info("pretraining in %d data-parallel CPU processes", procs)
        logs = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
        try:
            with standard_start_method():
                torch.multiprocessing.spawn(_pretrain_rank, nprocs=procs,
                                            args=(procs, arch, recipe, data, work, progress, logs))
        except torch.multiprocessing.ProcessRaisedException as e:
            raise _child_error(e) from None
    summary = json.loads((work / "model" / "pretrain_summary.json").read_text())
    install_dir(work / "model", out)
    shutil.rmtree(work, ignore_errors=True)
    return summary


def pretrain_processes(recipe: PretrainRecipe) -> int:
    """`recipe.processes` on the CPU, outside a process group (a torchrun job's rank 0 pretrains alone); else 1."""
    on_cpu = recipe.device == "cpu" or (recipe.device == "auto" and not torch.cuda.is_available())
    return recipe.processes if on_cpu and dist_info().world_size == 1 else 1


def _child_error(e: Exception) -> Exception:
    """A spawned process's failure as the parent's: an error the user fixes (a UserError, a diverged run) as one
    line naming it, anything else (a bug) with the child's traceback."""
    lines = [line for line in str(e).strip().splitlines() if line.strip()]
    kind, _, message = lines[-1].partition(": ") if lines else ("", "", "")
    if _is_fixable(kind):
        return UserError(f"toy pretraining: {message}")
    return RuntimeError(f"toy pretraining failed in a child process:\n{e}")


def _is_fixable(kind: str) -> bool:
    """Whether the exception class named ``kind`` (`module.Class`, or a builtin's name) is one the entry prints as
    one line (utils/errors.py user_errors)."""
    import builtins
    import importlib

    module, _, name = kind.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module) if module else builtins, name)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(cls, type) and issubclass(cls, user_errors())


def _spawned(rank: int, world: int, logs: list[str], data: DataConfig, work: Path) -> tuple:
    """A spawned child's set-up: the process group (a file store in the work dir: no port to race for, no
    launcher's store to look for), rank 0's log lines into the job's log files (the console and `make demo`'s
    progress read them), and the data and tokenizer read again."""
    import torch.distributed as dist

    for key in [k for k in os.environ if k.startswith("TORCHELASTIC_")]:  # an outer torchrun's, not ours
        del os.environ[key]
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world))
    dist.init_process_group("gloo", init_method=f"file://{work / '.process_group'}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(minutes=30))
    if rank == 0:
        handlers = [logging.StreamHandler(sys.stdout), *(logging.FileHandler(f) for f in logs)]
        logging.basicConfig(level=logging.INFO, handlers=handlers,
                            format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    source, train, dev, _ = _pretrain_data(data)
    return source, train, dev, WhisperTokenizerFast.from_pretrained(str(work / "tokenizer"))


def _pretrain_rank(rank: int, world: int, arch: ToyArch, recipe: PretrainRecipe, data: DataConfig, work: Path,
                   progress: bool, logs: list[str] | None = None, prepared: tuple | None = None) -> None:
    """One process of the pretraining (all of it when ``world`` is 1): rank 0 logs and saves into work/model."""
    source, train, dev, tokenizer = prepared if world == 1 else _spawned(rank, world, logs or [], data, work)
    torch.manual_seed(recipe.seed)  # after the corpus, whose first build may draw from the global generator
    model = WhisperForConditionalGeneration(toy_config(tokenizer, arch))
    set_pad_to_30s(model, False)
    # the recipe's caps are the global batch's: each of the `world` processes takes its share of every step
    lcfg = replace(data.loader, max_batch_frames=recipe.max_batch_frames // world,
                   max_batch_size=max(1, recipe.max_batch_size // world))
    kw = {"n_mels": arch.num_mel_bins, "pad_to_30s": False}
    train_loader = make_loader(train, source, tokenizer, lcfg, shuffle=True, seed=recipe.seed, num_replicas=world,
                               rank=rank, **kw)
    dev_loader = make_loader(dev, source, tokenizer, lcfg, shuffle=False, **kw)
    tcfg = _trainer_config(recipe, progress and rank == 0)
    logger = ConsoleLogger() if rank == 0 else None
    if logger is not None:
        logger.start(work, {})
    aux = []  # the CTC head only when weighted: building it draws from the global generator
    if recipe.ctc_weight > 0:
        aux.append(CTCAuxLoss(arch.d_model, len(tokenizer), token_id(tokenizer, EOT),
                              token_id(tokenizer, TASK_TOKENS["transcribe"]), recipe.ctc_weight))
    # One process (world 1) even inside a torchrun job: its other ranks wait on the cache lock meanwhile.
    trainer = Trainer(model, tokenizer, tcfg, work, train_loader, dev_loader, logger=logger, skips=source.skips,
                      extensions=aux, distributed=world > 1)
    with cpu_threads(recipe.cpu_threads if trainer.device.type == "cpu" else None):
        history = trainer.fit()
    if world > 1:  # its own group (world 1 may be rank 0 of a torchrun job, whose group stays)
        shutdown()
    if logger is not None:
        logger.finish()
        summary = {"history": history, "skipped": source.skips.as_dict(), "train_examples": len(train),
                   "processes": world}
        _save(model, tokenizer, summary, work)


def _pretrain_data(data: DataConfig):
    """(source, train, dev, tokenizer texts): English ASR plus one translation per clip (the toy stand-in for a
    multilingual pretrained model); the tokenizer also reads every ST target, whatever subset fine-tuning uses."""
    source = build_source(replace(data, options={**data.options, "max_train_per_direction": None}))
    train = source.examples("asr_train") + source.examples("pretrain_st_train")
    dev = source.examples("asr_dev") + source.examples("pretrain_st_dev")
    texts = [ex.translation for ex in train] + [ex.translation for ex in source.examples("train")]
    return source, train, dev, texts


def _trainer_config(recipe: PretrainRecipe, progress: bool) -> TrainerConfig:
    return TrainerConfig(
        stages=[StageConfig(name="pretrain", steps=recipe.steps, lr=recipe.lr, warmup_steps=recipe.warmup_steps,
                            schedule="linear", trainable=["all"])],
        log_every=max(1, recipe.steps // 20), progress=progress, device=recipe.device,
    )


def _save(model, tokenizer, summary: dict, work: Path) -> None:
    """The model, tokenizer, summary and metrics into work/model (pretrain_toy renames it into place)."""
    model.save_pretrained(str(work / "model"), safe_serialization=True)
    tokenizer.save_pretrained(str(work / "model"))
    (work / "model" / "pretrain_summary.json").write_text(json.dumps(summary, indent=2))
    shutil.copy(work / "metrics.jsonl", work / "model" / "pretrain_metrics.jsonl")
