"""Issue 16's redesign is behaviour-preserving: the same seeds and configs give the trace recorded before it
(tests/pipelines/equivalence.py; the golden file came from the code before the redesign)."""

from __future__ import annotations

import json
import math

from equivalence import GOLDEN, renamed, trace

ABS_TOL = 1e-5
ILL_CONDITIONED = {"subspace_overlap": 0.05}  # absolute tolerance of diagnostics that LAPACK kernels move


def differences(old, new, path: str = "") -> list[str]:
    """Where ``new`` departs from ``old``: floats beyond 1e-5 relative and ABS_TOL absolute, anything else unequal.

    The absolute floor is float32 rounding across CPUs: the golden file was recorded on AMD EPYC; on an Intel
    Xeon (other BLAS/LAPACK kernels) cluster's init logits moved by up to 1.6e-7, drop's logits after its
    training steps by up to 1.3e-6 (their sums 4e-6 relative), and `subspace_overlap` (the top-16 right
    singular subspaces of a tiny model's experts, whose spectra are nearly degenerate) by up to 0.03;
    everything else was equal. On one machine the trace is deterministic (the same result run after run).
    """
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in (differences(old.get(k), new.get(k), f"{path}/{k}")
                                          if k in old and k in new else [f"{path}/{k}: only on one side"])]
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{path}: length {len(old)} -> {len(new)}"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(old, float) and isinstance(new, (int, float)):
        tol = ILL_CONDITIONED.get(path.rsplit("/", 1)[-1], ABS_TOL)
        return [] if math.isclose(old, new, rel_tol=1e-5, abs_tol=tol) else [f"{path}: {old!r} -> {new!r}"]
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def test_trace_matches_the_recording_from_before_the_redesign(tmp_path):
    old = renamed(json.loads(GOLDEN.read_text()))
    new = json.loads(json.dumps(trace(tmp_path), default=str))
    assert set(new["scenarios"]) == {"dense", "vanilla", "random", "drop", "spri", "cluster"}
    diff = differences(old, new)
    assert not diff, f"{len(diff)} difference(s), first: {diff[:8]}"


def test_the_comparison_can_fail():
    assert differences({"a": [1.0, 2]}, {"a": [1.0 + 1e-3, 2]}) == ["/a[0]: 1.0 -> 1.001"]
    assert differences({"a": 0.01}, {"a": 0.01 + 2e-5}) and not differences({"a": 0.01}, {"a": 0.01 + 2e-6})
    assert differences({"subspace_overlap": 0.5}, {"subspace_overlap": 0.6})
    assert not differences({"subspace_overlap": 0.5}, {"subspace_overlap": 0.53})
    assert differences({"a": 1}, {"b": 1}) == ["/a: only on one side", "/b: only on one side"]
