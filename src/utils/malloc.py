"""glibc allocator tuning for CPU training (`trainer.tune_cpu_malloc`, on by default).

By default glibc serves blocks above a (dynamic) threshold with mmap and hands freed memory at the
top of the heap back to the kernel. A training step frees and re-allocates the same large blocks
(activations, the stacked expert-gradient buffers) every step, so each step page-faults them back in:
on 2 CPU cores that made the per-expert MoE loop 5-11% slower than transformers' Mixtral block, and
level with it once the allocator keeps the memory (docs/benchmarks.md; `scripts/bench_malloc.py`
measures both settings side by side). The cost is resident memory that is not returned to the OS
while the process lives, which is what a training process wants anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 30  # blocks below 1 GiB come from the heap, not fresh mmaps
TRIM_THRESHOLD = (1 << 31) - 1  # keep up to ~2 GiB of free heap top rather than trimming it each step

_applied = False


def tune_glibc_malloc() -> bool:
    """Raise glibc's mmap and trim thresholds for this process; False (and a debug line) when the C
    library is not glibc (macOS, musl) or refuses the setting. Idempotent."""
    global _applied
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        log.debug("allocator tuning skipped: not Linux/glibc")
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    except (OSError, AttributeError) as e:
        log.debug("allocator tuning skipped: %s", e)
        return False
    _applied = ok
    if ok:
        log.info("CPU allocator tuned (glibc mmap/trim thresholds raised; trainer.tune_cpu_malloc=false turns it off)")
    return ok
