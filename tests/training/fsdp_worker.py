"""Run by test_distributed under torchrun (2 CPU processes, gloo): FSDP's helpers against a plain
replica of the same model, which every process also trains on the same global batch."""

from __future__ import annotations

import sys

import torch
import torch.distributed as dist

from src.training.checkpoint import load_optimizer_state, optimizer_state, save_checkpoint
from src.training.distributed import (
    all_reduce_mean,
    clip_grad_norm,
    gathered_state_dict,
    release_gathered,
    shard_model,
    wrap_model,
)
from src.utils.sharding import assign_full, full


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(6, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.fc(x))


class Net(torch.nn.Module):
    _no_split_modules = ["Block"]

    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList([Block(), Block()])
        self.head = torch.nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return self.head(x)


def main(out_dir: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(0)
    ref, aux_ref = Net(), torch.nn.Linear(2, 1)  # aux: an unsharded extension head, as the CTC head
    model, aux = Net(), torch.nn.Linear(2, 1)
    model.load_state_dict(ref.state_dict())
    aux.load_state_dict(aux_ref.state_dict())
    model.blocks[1].fc.bias.requires_grad_(False)  # a frozen parameter inside a unit (stage 1)
    ref.blocks[1].fc.bias.requires_grad_(False)
    shard_model(model)
    assert type(model.blocks[0].fc.weight).__name__ == "DTensor"
    assert model.blocks[0].fc.weight.to_local().shape == (3, 6)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad] + list(aux.parameters()), lr=0.1)
    opt_ref = torch.optim.AdamW([p for p in ref.parameters() if p.requires_grad] + list(aux_ref.parameters()), lr=0.1)
    x, y = torch.randn(2, 4, 6), torch.randn(2, 2)
    for _ in range(3):
        # FSDP averages the processes' gradients: each sees its half, the replica sees both halves
        (model(x[rank]).pow(2).mean() + aux(y[rank]).sum()).backward()
        (sum(ref(x[r]).pow(2).mean() + aux_ref(y[r]).sum() for r in range(2)) / 2).backward()
        all_reduce_mean([p.grad for p in aux.parameters()])  # the trainer's job for unsharded heads
        norm = clip_grad_norm(list(model.parameters()) + list(aux.parameters()), 0.05)
        norm_ref = torch.nn.utils.clip_grad_norm_(list(ref.parameters()) + list(aux_ref.parameters()), 0.05)
        assert torch.allclose(norm, norm_ref, rtol=1e-5), (float(norm), float(norm_ref))
        opt.step(), opt_ref.step(), opt.zero_grad(), opt_ref.zero_grad()
    with torch.no_grad():  # a dev-loss forward: no backward to reshard the root unit's weights
        model(x[rank])
    assert type(model.head.weight).__name__ != "DTensor"  # still gathered
    release_gathered(model)
    assert type(model.head.weight).__name__ == "DTensor"
    state = gathered_state_dict(model)
    for name, p in ref.state_dict().items():
        if rank == 0:
            assert torch.allclose(state[name], p, atol=1e-6), name
    assert state is None or rank == 0
    assign_full(model.head.weight, torch.full((3, 6), float(rank + 1)))  # rank 0's whole tensor wins
    assert torch.equal(full(model.head.weight), torch.ones(3, 6))

    modules = torch.nn.ModuleDict({"model": model, "aux": torch.nn.ModuleList([aux])})
    saved = optimizer_state(modules, opt)
    if rank == 0:
        assert saved["state"]["model.blocks.0.fc.weight"]["exp_avg"].shape == (6, 6)  # whole, not a shard
        assert "model.blocks.1.fc.bias" not in saved["state"]
        save_checkpoint(_Saver(), None, out_dir, {"step": 3}, saved)
    dist.barrier()
    fresh = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad] + list(aux.parameters()), lr=0.1)
    assert load_optimizer_state(out_dir, modules, fresh, sharded=True)
    for p in [q for q in model.parameters() if q.requires_grad] + list(aux.parameters()):
        a, b = opt.state[p]["exp_avg_sq"], fresh.state[p]["exp_avg_sq"]
        assert torch.equal(full(a), full(b))
    mixed_precision()
    dist.destroy_process_group()
    print(f"rank {rank} ok")


def mixed_precision() -> None:
    """bf16 training under FSDP: layers gathered in bf16, a module marked fsdp_fp32 (the MoE router) in
    fp32; shards, gradients and optimizer state stay fp32."""
    torch.manual_seed(0)
    model = Net()
    model.blocks[0].gate = torch.nn.Linear(6, 2)  # stands in for a router inside a layer unit
    model.blocks[0].gate.fsdp_fp32 = True
    seen = {}
    for name in ("blocks.0.fc", "blocks.0.gate", "head"):
        module = model.get_submodule(name)
        module.register_forward_pre_hook(lambda m, args, name=name: seen.__setitem__(name, m.weight.dtype))
    model.blocks[1].requires_grad_(False)  # stage 1: a whole layer unit frozen through its first forward
    for stage in range(2):
        if stage == 1:  # stage 2 trains it: FSDP must now reduce its gradients in fp32 too
            model.blocks[1].requires_grad_(True)
        wrap_model(model, "fsdp", torch.device("cpu"), distributed=True, param_dtype=torch.bfloat16)  # the trainer's
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.1)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(torch.randn(4, 6))
            out = out + model.blocks[0].gate(torch.randn(4, 6)).sum()
        out.float().pow(2).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=False)
    assert seen == {"blocks.0.fc": torch.bfloat16, "blocks.0.gate": torch.float32, "head": torch.bfloat16}, seen
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32 and p.grad.dtype == torch.float32, name


class _Saver:
    """Stands in for an HF model: save_checkpoint only asks it to write its weights."""

    def save_pretrained(self, path: str, **kwargs) -> None:
        open(f"{path}/model.safetensors", "wb").close()


if __name__ == "__main__":
    main(sys.argv[1])
