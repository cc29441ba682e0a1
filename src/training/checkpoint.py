"""The one checkpoint format: an HF model directory (config.json + model.safetensors) plus the
tokenizer, and optionally trainer state for resuming (optimizer/scheduler loaded weights_only).

Optimizer state is keyed by parameter name (torch.distributed.checkpoint's full state dict), not by
position, so one file serves a single process, DDP and FSDP alike."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

STATE_FILE = "trainer_state.json"
OPTIM_FILE = "optimizer.pt"


def save_checkpoint(model, tokenizer, out_dir: str | Path, state: dict | None = None,
                    optimizer_state: dict | None = None, scheduler=None, weights: dict | None = None) -> Path:
    """Write atomically (temp dir + rename) so a crash never leaves a half checkpoint. `weights`: the
    model's state dict when the model itself cannot give it (FSDP shards, see gathered_state_dict)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp), safe_serialization=True, state_dict=weights)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp))
    if state is not None:
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2))
    if optimizer_state is not None:
        torch.save({"optimizer": optimizer_state,
                    "scheduler": scheduler.state_dict() if scheduler is not None else None}, tmp / OPTIM_FILE)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


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
        raise RuntimeError(f"{path}: optimizer state does not match this stage's parameters ({e}); "
                           "resume with the same config, or delete the file to restart the optimizer") from e
    if scheduler is not None and blob.get("scheduler") is not None:
        scheduler.load_state_dict(blob["scheduler"])
    return True


def load_weights(model, ckpt_dir: str | Path) -> None:
    """Load model.safetensors into an already-built model of the same architecture (for resume)."""
    from safetensors.torch import load_file

    path = Path(ckpt_dir) / "model.safetensors"
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Tied output projection is not stored separately.
    missing = [k for k in missing if not k.endswith("proj_out.weight")]
    if missing or unexpected:
        raise RuntimeError(f"{path}: checkpoint does not match the model (missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]})")
