"""Shared by scripts/bench_*.py: how a benchmark names the machine it measured on."""

from __future__ import annotations

import statistics
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


def interleaved_medians(fns: dict[str, object], repeats: int, device: str | torch.device) -> dict[str, float]:
    """Median seconds per call of each ``fn`` after one warm-up each, the variants taking turns call by
    call: on a shared machine, load that drifts during the run then hits every variant alike."""
    cuda = torch.device(device).type == "cuda"
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}
