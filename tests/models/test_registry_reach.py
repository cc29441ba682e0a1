"""The strategy registry is complete however a strategy is reached: a script that imports
models/upcycling/apply.py directly (bench_train.py, bench_upcycle.py, gpu_check's parts) found it empty
(`KeyError: 'vanilla'`), because the strategies register when the package's lazy attribute is first read."""

from __future__ import annotations

import subprocess
import sys


def test_apply_alone_sees_every_registered_strategy():
    code = ("from src.models.upcycling.apply import STRATEGIES\n"
            "from src.models.upcycling.config import CONFIGS\n"
            "assert sorted(STRATEGIES) == sorted(CONFIGS), (sorted(STRATEGIES), sorted(CONFIGS))\n"
            "print(len(STRATEGIES))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip()) >= 6
