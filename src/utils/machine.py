"""What machine a run ran on: recorded in every train_summary.json, because CPU kernels (and so results)
differ in their last bits between processors and thread counts, and a small model trained for a short
budget can turn that into whole BLEU points. Same machine and threads: bit-identical; another CPU: not."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """CPU model, cores, torch's threads and CPU ISA, GPU names, torch / CUDA / cuDNN versions, Python."""
    import torch

    cuda = torch.cuda.is_available()
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "python": platform.python_version(),
    }


def machine_label(info: dict) -> str:
    """One line naming what decides the arithmetic: CPU (and ISA) or GPU, threads, torch."""
    gpus = info.get("gpus") or []
    device = f"{len(gpus)}x {gpus[0]}" if gpus else f"{info.get('cpu', '?')} ({info.get('cpu_capability', '?')})"
    return f"{device}, {info.get('torch_threads', '?')} thread(s), torch {info.get('torch', '?')}"
