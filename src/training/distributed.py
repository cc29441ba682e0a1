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

from src.training.config import PARALLEL_MODES
from src.utils.errors import UserError
from src.utils.sharding import full


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


def wrap_model(model: torch.nn.Module, parallel: str, device: torch.device, *, distributed: bool,
               compile_backend: str | None = None, param_dtype: torch.dtype | None = None) -> torch.nn.Module:
    """The module a training step calls. One process: the model (compiled with `compile_backend` if one is
    given). Several: DDP around
    it, or the model sharded in place by FSDP (each process keeps 1/N of every parameter, gradient and
    optimizer state; `param_dtype`: see shard_model) and then compiled, the order both wrappers expect.
    Called once per stage, after the stage has chosen what trains."""
    if parallel not in PARALLEL_MODES:
        raise UserError(f"trainer.parallel: '{parallel}' is not one of {PARALLEL_MODES}")
    if distributed and parallel == "fsdp":
        shard_model(model, param_dtype)
        refresh_mixed_precision(model)
    if compile_backend:
        # A new stage changes which parameters need gradients, and dynamo does not guard on that: the graphs
        # compiled in stage 1 would keep treating its frozen weights as constants, so stage 2 would never
        # train them. Dropping the cache recompiles once per stage.
        torch._dynamo.reset()
    engine = torch.compile(model, backend=compile_backend) if compile_backend else model
    if distributed and parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        engine = DistributedDataParallel(engine, device_ids=[device.index] if device.type == "cuda" else None)
    return engine


def shard_model(model: torch.nn.Module, param_dtype: torch.dtype | None = None) -> torch.nn.Module:
    """FSDP2 (`fully_shard`): one unit per transformer layer (the model's `_no_split_modules`, as accelerate
    does), the rest (embeddings, tied output projection, norms) in the root unit. Idempotent, because the
    sharding is in place and survives stage changes: a parameter frozen by the next stage simply stops
    getting gradients, so unlike DDP nothing is rebuilt.

    `param_dtype` (bf16 training): weights are gathered and used in that dtype, halving the all-gather
    traffic and the gathered copies; gradients are reduced and kept in fp32 next to the fp32 shards.
    Modules marked `fsdp_fp32` (the MoE routers) become their own units that stay fp32."""
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    if isinstance(model, FSDPModule):
        return model
    policy = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32 if param_dtype else None)
    if param_dtype is not None:
        fp32 = MixedPrecisionPolicy(param_dtype=torch.float32, reduce_dtype=torch.float32)
        for module in model.modules():
            if getattr(module, "fsdp_fp32", False):
                fully_shard(module, mp_policy=fp32)
    layer_types = set(getattr(model, "_no_split_modules", None) or [])
    units = [m for m in model.modules() if any(c.__name__ in layer_types for c in type(m).__mro__)]  # MoE layers too
    for module in units:
        fully_shard(module, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    logging.getLogger(__name__).info("FSDP: %d layer units + the root sharded over %d processes (weights used in %s)",
                                     len(units), dist.get_world_size(), str(param_dtype or "their own dtype"))
    return model


def refresh_mixed_precision(model: torch.nn.Module) -> None:
    """Call after changing which parameters train (a new stage). FSDP2 fixes each unit's gather/reduce dtypes
    at its first forward from the parameters that train then, so a unit frozen all through stage 1 would
    otherwise reduce stage 2's bf16 gradients into fp32 ones and fail at the first backward."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            group = module._get_fsdp_state()._fsdp_param_group  # private, pinned by tests/training/fsdp_worker.py
            if group is not None:
                group._init_mp_dtypes()


def is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def release_gathered(model: torch.nn.Module) -> None:
    """After forwards with no backward (the dev loss): FSDP's root unit keeps its gathered weights until a
    backward reshards them, so free them now rather than hold a second full copy of the embeddings."""
    if is_sharded(model):
        model.reshard()


def clip_grad_norm(params: list[torch.Tensor], max_norm: float | None) -> torch.Tensor:
    """Global gradient norm over sharded and plain parameters together (an auxiliary head is never
    sharded), then clipping of all of them by the same factor; returns the norm before clipping."""
    from torch.distributed.tensor import DTensor

    with_grad = [p for p in params if p.grad is not None]
    if not with_grad:
        return torch.zeros(())
    sharded = [p for p in with_grad if isinstance(p.grad, DTensor)]
    groups = [sharded, [p for p in with_grad if not isinstance(p.grad, DTensor)]]
    norms = [full(torch.nn.utils.get_total_norm([p.grad for p in g])).float() for g in groups if g]
    total = torch.linalg.vector_norm(torch.stack(norms))
    if max_norm is not None:
        for g in groups:
            if g:
                torch.nn.utils.clip_grads_with_norm_(g, max_norm, total)
    return total


def gathered_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
    """The whole model's weights on the CPU of rank 0 (a collective under FSDP; None on the other ranks);
    a plain model's own state dict otherwise. Tied aliases (e.g. Whisper's output projection) are left out,
    as save_pretrained expects."""
    if not is_sharded(model):
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not dist_info().is_main:
        return None
    own = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    return {k: v for k, v in state.items() if k in own}


def all_reduce_sum(tensors: list[torch.Tensor]) -> None:
    """Sum in place across processes (a no-op in one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)


def all_reduce_mean(tensors: list[torch.Tensor]) -> None:
    """Average gradients the wrapper does not own (e.g. an auxiliary head) across processes."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    all_reduce_sum(tensors)
    for t in tensors:
        t.div_(dist.get_world_size())


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
