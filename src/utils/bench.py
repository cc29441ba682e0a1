"""Shared by scripts/bench_*.py: how a benchmark names the machine it measured on."""

from __future__ import annotations

import time

import torch


def device_name(device: str | torch.device) -> str:
    """`NVIDIA H100 80GB HBM3` or `cpu (2 threads)`, plus the torch version: every table says where it ran."""
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return f"{name}, torch {torch.__version__}"


def seconds_per_call(fn, repeats: int, device: str | torch.device) -> float:
    """Mean wall time of ``fn()`` over ``repeats`` calls after one warm-up, GPU work included."""
    cuda = torch.device(device).type == "cuda"
    fn()
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    if cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / repeats
