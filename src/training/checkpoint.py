"""The one checkpoint format: an HF model directory (config.json + model.safetensors) plus the
tokenizer, and optionally trainer state for resuming (optimizer/scheduler and the random-number states,
loaded weights_only).

Optimizer state is keyed by parameter name (torch.distributed.checkpoint's full state dict), not by
position, so one file serves a single process, DDP and FSDP alike.

Durability: a checkpoint is written into a temp dir beside its place, with a `COMPLETE` marker, fsynced and
renamed into place (utils/atomic.py `atomic_dir`: the old copy moved aside first and deleted last), so a kill
at any moment leaves either the old or the new checkpoint whole. Mid-stage checkpoints are `step-N/` dirs
(the last `trainer.keep_checkpoints` kept) with a `latest` pointer file replaced by os.replace."""

from __future__ import annotations

import json
import logging
import random
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from src.utils.atomic import OutputError, atomic_dir, write_text
from src.utils.errors import UserError, first_line
from src.utils.safetensors_file import safetensors_problem

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
OPTIM_FILE = "optimizer.pt"
RNG_FILE = "rng_state.pt"
EXTENSIONS_FILE = "extensions.pt"  # TrainerExtension.state_dict() of each extension that has state
WEIGHTS_FILE = "model.safetensors"
COMPLETE = "COMPLETE"  # written last: a dir without it is an interrupted write
LATEST = "latest"  # pointer file: the name of the newest step dir
STEP_PREFIX = "step-"


def save_checkpoint(model, tokenizer, out_dir: str | Path, state: dict | None = None,
                    optimizer_state: dict | None = None, scheduler=None, weights: dict | None = None,
                    rng: dict | None = None, extensions: dict | None = None) -> Path:
    """Write durably (atomic_dir: temp dir, COMPLETE marker, fsync, rename) so a kill never leaves a half
    checkpoint. `weights`: the model's state dict when the model itself cannot give it
    (FSDP shards, see gathered_state_dict). `rng`: every rank's random-number states (capture_rng)."""
    out_dir = Path(out_dir)
    try:
        return _write_checkpoint(model, tokenizer, out_dir, state, optimizer_state, scheduler, weights, rng,
                                 extensions)
    except OSError as e:  # permission, disk full: one line naming the checkpoint (an OutputError is a user error)
        raise OutputError(f"cannot write checkpoint {out_dir}: {e.strerror or e}; free some space or make "
                          f"{out_dir.parent} writable, then rerun the same command to continue") from e


def _write_checkpoint(model, tokenizer, out_dir: Path, state, optimizer_state, scheduler, weights, rng,
                      extensions) -> Path:
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp), safe_serialization=True, state_dict=weights)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        if state is not None:
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
        if optimizer_state is not None:
            torch.save({"optimizer": optimizer_state,
                        "scheduler": scheduler.state_dict() if scheduler is not None else None}, tmp / OPTIM_FILE)
        if rng is not None:
            torch.save(rng, tmp / RNG_FILE)
        if extensions:
            torch.save(extensions, tmp / EXTENSIONS_FILE)
        (tmp / COMPLETE).write_text("ok\n")  # a dir without it is a write that never finished
    return out_dir


def step_dir(ckpts: Path, global_step: int) -> Path:
    return Path(ckpts) / f"{STEP_PREFIX}{global_step:08d}"


def step_dirs(ckpts: Path) -> list[Path]:
    """Mid-stage checkpoint dirs, newest first (temp/old copies excluded)."""
    found = [d for d in Path(ckpts).glob(f"{STEP_PREFIX}*") if d.is_dir() and d.name[len(STEP_PREFIX):].isdigit()]
    return sorted(found, key=lambda d: int(d.name[len(STEP_PREFIX):]), reverse=True)


def publish_step(ckpts: Path, newest: Path, keep: int, protect: Path | None = None) -> None:
    """Point `latest` at ``newest`` (os.replace) and delete all but the newest ``keep`` step dirs and ``protect``
    (the checkpoint a diverging run names as its last good one)."""
    pointer = Path(ckpts) / LATEST
    if pointer.is_dir():  # a run from before step dirs kept its rolling checkpoint here
        shutil.rmtree(pointer)
    write_text(pointer, newest.name + "\n")
    for d in step_dirs(ckpts)[keep:]:
        if protect is None or d != Path(protect):
            shutil.rmtree(d, ignore_errors=True)


def has_checkpoints(ckpts: Path) -> bool:
    """Whether ``ckpts`` holds anything a run wrote (a step, stage, best or averaged checkpoint dir)."""
    return Path(ckpts).is_dir() and any(d.is_dir() for d in Path(ckpts).iterdir())


def clear_steps(ckpts: Path) -> None:
    """Delete the mid-stage checkpoints and the pointer (a completed stage's checkpoint supersedes them)."""
    (Path(ckpts) / LATEST).unlink(missing_ok=True)
    for d in step_dirs(ckpts):
        shutil.rmtree(d, ignore_errors=True)


def capture_rng() -> dict:
    """This process's torch (CPU and CUDA), numpy and python random-number states, as tensors and plain
    values (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, py_state, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": {"version": version, "state": list(py_state), "gauss": py_gauss}}


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def load_rng(ckpt_dir: str | Path, rank: int, world_size: int) -> dict | None:
    """This rank's saved random-number state; None (with a warning) when absent or saved by another world size."""
    path = Path(ckpt_dir) / RNG_FILE
    if not path.exists():
        log.warning("%s missing: random-number states not restored (dropout draws will differ)", path)
        return None
    ranks = torch.load(path, map_location="cpu", weights_only=True)["ranks"]
    if len(ranks) != world_size:
        log.warning("%s holds %d ranks' states, this run has %d: not restored", path, len(ranks), world_size)
        return None
    return ranks[rank]


def load_extension_states(ckpt_dir: str | Path) -> dict:
    """{key: state} as the trainer saved it; {} when the checkpoint has none."""
    path = Path(ckpt_dir) / EXTENSIONS_FILE
    return torch.load(path, map_location="cpu", weights_only=True) if path.exists() else {}


def checkpoint_problem(ckpt_dir: Path, mid_stage: bool) -> str | None:
    """Why ``ckpt_dir`` cannot be resumed from (naming the file), or None when it looks whole: the COMPLETE
    marker, a parsable state JSON, a safetensors file whose header and data are all there, and for a
    mid-stage checkpoint the optimizer and random-number state files (zip archives with their directory)."""
    d = Path(ckpt_dir)
    if not (d / COMPLETE).exists():
        return f"{d / COMPLETE} missing (the write was interrupted)"
    try:
        state = json.loads((d / STATE_FILE).read_text())
        if not isinstance(state, dict) or "global_step" not in state:
            return f"{d / STATE_FILE}: no global_step"
    except (OSError, ValueError) as e:
        return f"{d / STATE_FILE}: {e}"
    problem = safetensors_problem(d / WEIGHTS_FILE)
    if problem:
        return problem
    required = (OPTIM_FILE, RNG_FILE) if mid_stage else ()
    for name in dict.fromkeys([*required, *(f for f in (RNG_FILE, EXTENSIONS_FILE) if (d / f).exists())]):
        problem = _torch_file_problem(d / name)
        if problem:
            return problem
    return None


# What each trainer-state file must hold at its top level (anything else was not written by this trainer).
EXPECTED_KEYS = {OPTIM_FILE: ("optimizer", "scheduler"), RNG_FILE: ("ranks",), EXTENSIONS_FILE: ()}


def _torch_file_problem(path: Path) -> str | None:
    """Load the file as a resume would (weights_only, memory-mapped: the tensors are not read) and check its
    top-level keys; a pickle that needs code, a truncated archive or a foreign dict is named here."""
    if not path.exists():
        return f"{path} missing"
    try:
        with zipfile.ZipFile(path) as z:
            z.infolist()
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # noqa: BLE001 - any failure to load means: not this checkpoint
        return f"{path}: unreadable ({first_line(e, type(e).__name__)[:200]})"
    missing = [k for k in EXPECTED_KEYS[path.name] if not isinstance(blob, dict) or k not in blob]
    if not isinstance(blob, dict) or missing:
        return f"{path}: not a trainer state file (missing {missing or 'a dict'})"
    return None


def optimizer_state(modules: torch.nn.Module, optimizer) -> dict:
    """The optimizer's state keyed by the names of `modules`' parameters, whole, on the CPU (a collective
    when the modules are FSDP-sharded: every process calls it, rank 0 gets the state)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(modules, optimizer,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def read_state(ckpt_dir: str | Path) -> dict | None:
    path = Path(ckpt_dir) / STATE_FILE
    return json.loads(path.read_text()) if path.exists() else None


def load_optimizer_state(ckpt_dir: str | Path, modules: torch.nn.Module, optimizer, scheduler=None,
                         sharded: bool = False) -> bool:
    """Restore what optimizer_state saved; when sharded, rank 0's copy is broadcast and each process keeps
    its shard."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    path = Path(ckpt_dir) / OPTIM_FILE
    if not path.exists():
        return False
    # mmap: under FSDP every process reads the whole file, and they share its pages rather than hold N copies
    blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True) if sharded else StateDictOptions()
    try:
        set_optimizer_state_dict(modules, optimizer, blob["optimizer"], options=options)
    except (KeyError, ValueError, RuntimeError) as e:
        raise UserError(f"{path}: optimizer state does not match this stage's parameters ({e}); "
                           "resume with the same config, or delete the file to restart the optimizer") from e
    if scheduler is not None and blob.get("scheduler") is not None:
        scheduler.load_state_dict(blob["scheduler"])
    return True


def read_state_safe(ckpt_dir: Path) -> dict | None:
    """trainer_state.json, or None when it is missing or unreadable (checkpoint_problem says which)."""
    try:
        return read_state(ckpt_dir)
    except (OSError, ValueError):
        return None


@dataclass
class ResumePoint:
    """Where a run continues: a validated checkpoint and the trainer state it recorded. ``stage_index`` /
    ``stage_step``: the stage and its step to run next (a completed stage's checkpoint points at the next stage's
    step 0); ``rng``: this process's random-number states, filled in when the trainer restores the point."""

    dir: Path
    global_step: int
    stage_index: int
    stage_step: int
    epoch: int = 0
    batch_in_epoch: int = 0
    history: list[dict] = field(default_factory=list)  # the completed stages' summaries
    complete: bool = False  # the end of a stage (not a mid-stage step checkpoint)
    best: dict | None = None  # the selector's best so far (trainer.select=best_dev_loss)
    evals_since_best: int = 0
    window: dict | None = None  # the log window's sums so far (a mid-stage checkpoint)
    rng: dict | None = None

    @classmethod
    def from_state(cls, d: Path, state: dict, **where: int) -> ResumePoint:
        """From trainer_state.json's fields (``where`` overrides stage_index / stage_step)."""
        fields = {**state, **where}
        return cls(dir=d, global_step=int(fields["global_step"]), stage_index=int(fields["stage_index"]),
                   stage_step=int(fields["stage_step"] or 0), epoch=fields.get("epoch", 0),
                   batch_in_epoch=fields.get("batch_in_epoch", 0), history=list(fields.get("history", [])),
                   complete=bool(fields.get("complete", False)), best=fields.get("best"),
                   evals_since_best=fields.get("evals_since_best", 0), window=fields.get("window"))


def find_resume_point(ckpts: Path, stage_names: list[str]) -> ResumePoint | None:
    """The furthest checkpoint under ``ckpts`` that validates, a mid-stage `step-N/` or the end of a completed
    stage; None when there is none. A damaged one is skipped for the next older with a warning naming it."""
    candidates = []  # (global_step, is_mid_stage, dir, state, where)
    for idx, name in enumerate(stage_names):
        state = read_state_safe(ckpts / name)
        if state is not None and state.get("complete"):
            candidates.append((state.get("global_step", 0), False, ckpts / name, state,
                               {"stage_index": idx + 1, "stage_step": 0}))
    for d in step_dirs(ckpts):
        state = read_state_safe(d) or {}
        candidates.append((state.get("global_step", -1), True, d, state, {}))
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    for _, mid_stage, d, state, where in candidates:
        problem = checkpoint_problem(d, mid_stage)
        if problem is None and mid_stage and not (0 <= state.get("stage_index", -1) < len(stage_names)):
            problem = f"{d}: stage_index {state.get('stage_index')} does not fit trainer.stages"
        if problem is None:
            return ResumePoint.from_state(d, state, **where)
        log.warning("resume: skipping checkpoint %s: %s", d.name, problem)
    return None


def load_weights(model, ckpt_dir: str | Path) -> None:
    """Load model.safetensors into an already-built model of the same architecture (for resume)."""
    from safetensors.torch import load_file

    path = Path(ckpt_dir) / WEIGHTS_FILE
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Tied output projection is not stored separately.
    missing = [k for k in missing if not k.endswith("proj_out.weight")]
    if missing or unexpected:
        raise UserError(f"{path}: checkpoint does not match the model (missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]})")
