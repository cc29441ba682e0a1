"""Several processes (GPUs, nodes) with standard launchers: `torchrun --nproc-per-node N -m src.train`
or `accelerate launch -m src.train`. Both set RANK / WORLD_SIZE / LOCAL_RANK; this module turns them
into a process group, a device per process and a wrapped model (DDP, or FSDP for models that do not
fit one GPU). A single process (no WORLD_SIZE) is the plain case and nothing here changes it.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

STRATEGIES = ("ddp", "fsdp")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def dist_info() -> DistInfo:
    """This process's place, from the launcher's environment (or the live process group)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))


def init_distributed(device: str = "auto", backend: str | None = None) -> DistInfo:
    """Join the process group when launched with WORLD_SIZE > 1 (nccl on GPUs, gloo on CPUs)."""
    info = dist_info()
    if not info.enabled or dist.is_initialized():
        return info
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda")
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(backend or ("nccl" if use_cuda else "gloo"), timeout=datetime.timedelta(minutes=30))
    return dist_info()


def process_device(name: str, info: DistInfo) -> torch.device:
    """`auto`: this process's GPU (cuda:LOCAL_RANK) when there is one, else the CPU."""
    if name == "auto":
        return torch.device(f"cuda:{info.local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if name == "cuda" and info.enabled:
        return torch.device(f"cuda:{info.local_rank}")
    return torch.device(name)


def wrap_model(model: torch.nn.Module, strategy: str, device: torch.device) -> torch.nn.Module:
    """The module the training step calls: the model itself (one process), DDP or FSDP around it."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return model
    if strategy not in STRATEGIES:
        raise ValueError(f"trainer.strategy: '{strategy}' is not one of {STRATEGIES}")
    ids = [device.index] if device.type == "cuda" else None
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model, device_ids=ids)
    # Not yet: FSDP needs per-layer wrapping, sharded gradient clipping, shard-aware SD-MoE and rank
    # checks and a stage-aware rewrap, none of which can be tested without GPUs. A clear error beats a
    # run that silently saves no memory or clips each shard differently.
    raise ValueError("trainer.strategy=fsdp is not implemented yet (needs GPU testing); use trainer.strategy=ddp, "
                     "with trainer.gradient_checkpointing=true to save memory")


def all_reduce_mean(tensors: list[torch.Tensor]) -> None:
    """Average gradients the wrapper does not own (e.g. an auxiliary head) across processes."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    world = dist.get_world_size()
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t.div_(world)


@torch.no_grad()
def check_ranks_agree(model: torch.nn.Module, device: torch.device) -> None:
    """Every process must end with the same weights (DDP keeps them in step); a mismatch is an error."""
    digest = torch.stack([torch.stack([p.double().sum(), (p.double() * p.double()).sum()])
                          for p in model.parameters()]).reshape(-1).to(device)
    gathered = [torch.empty_like(digest) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, digest)
    if not all(torch.equal(gathered[0], g) for g in gathered[1:]):
        raise RuntimeError("the processes ended training with different weights")
    logging.getLogger(__name__).info("all %d processes ended with identical weights", dist.get_world_size())


def shutdown() -> None:
    """Leave the process group (before rank 0's long single-process evaluation, so no collective times out)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
