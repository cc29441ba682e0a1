"""Where and how this process computes: its place in the process group, its device, determinism, the CPU
allocator and the autocast dtype; and the collectives the loop's decisions and counters go through, so every
process takes the same branch and logs the same totals (identities in a single process)."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import torch

from src.training.config import TrainerConfig
from src.training.distributed import (
    DistInfo,
    all_reduce_mean,
    all_reduce_sum,
    barrier,
    dist_info,
    init_distributed,
    is_sharded,
    process_device,
)
from src.utils.malloc import tune_glibc_malloc

log = logging.getLogger(__name__)


def make_deterministic() -> None:
    """One intra-op thread and deterministic algorithms (CUDA's cuBLAS needs its workspace setting)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=False)


def resolve_device(name: str) -> torch.device:
    """`auto`: this process's GPU when there is one (cuda:LOCAL_RANK under torchrun), else the CPU."""
    return process_device(name, dist_info())


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """`auto`: bf16 on a GPU that has it, else fp32 (None: no autocast)."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


@dataclass
class Runtime:
    dist: DistInfo
    device: torch.device
    dtype: torch.dtype | None  # autocast's; None: fp32

    @classmethod
    def set_up(cls, cfg: TrainerConfig, distributed: bool = True) -> Runtime:
        """Join the process group (distributed=False: a single-process job even under torchrun, e.g. rank 0
        pretraining the toy model), pick the device, and apply determinism and the CPU allocator setting."""
        info = init_distributed(cfg.device) if distributed else DistInfo(local_rank=dist_info().local_rank)
        device = resolve_device(cfg.device)
        if cfg.deterministic:
            make_deterministic()
        if cfg.tune_cpu_malloc and device.type == "cpu":
            tune_glibc_malloc()
        if device.type == "cpu":
            log.info("device: cpu, %d thread(s)", torch.get_num_threads())
        return cls(info, device, autocast_dtype(cfg.precision, device))

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def fused_optimizer(self, model: torch.nn.Module) -> bool:
        """AdamW's fused kernel: on CUDA, and on the CPU (3.7x faster than the per-tensor loop on the toy model's
        parameters, ~5% of a toy step; it rounds differently, at ~3e-8 relative) except for CPU-sharded FSDP."""
        return self.device.type == "cuda" or (self.device.type == "cpu" and not is_sharded(model))

    def any_rank(self, flag: bool) -> bool:
        """True on every process when ``flag`` holds on any of them (so all take the same branch)."""
        if not self.dist.enabled:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        all_reduce_sum([t])
        return bool(t.item() > 0)

    def sum(self, *values: float) -> list[float]:
        """Each value summed over the processes (float64)."""
        if not self.dist.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        all_reduce_sum([t])
        return t.tolist()

    def mean(self, value: float) -> float:
        """The value averaged over the processes (float64): one value on every process, so all decide alike."""
        if not self.dist.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        all_reduce_mean([t])
        return t.item()

    def reduce_mean(self, grads: list[torch.Tensor]) -> None:
        if self.dist.enabled:
            all_reduce_mean(grads)

    def barrier(self) -> None:
        if self.dist.enabled:
            barrier()
