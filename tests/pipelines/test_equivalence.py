"""Issue 16's redesign is behaviour-preserving: the same seeds and configs give the trace recorded before it
(tests/pipelines/equivalence.py; the golden file came from the code before the redesign)."""

from __future__ import annotations

import json
import math

from equivalence import GOLDEN, renamed, trace


def differences(old, new, path: str = "") -> list[str]:
    """Where ``new`` departs from ``old``: floats beyond 1e-6 relative (1e-9 absolute), anything else unequal."""
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in (differences(old.get(k), new.get(k), f"{path}/{k}")
                                          if k in old and k in new else [f"{path}/{k}: only on one side"])]
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return [f"{path}: length {len(old)} -> {len(new)}"]
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in differences(a, b, f"{path}[{i}]")]
    if isinstance(old, float) and isinstance(new, (int, float)):
        return [] if math.isclose(old, new, rel_tol=1e-6, abs_tol=1e-9) else [f"{path}: {old!r} -> {new!r}"]
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def test_trace_matches_the_recording_from_before_the_redesign(tmp_path):
    old = renamed(json.loads(GOLDEN.read_text()))
    new = json.loads(json.dumps(trace(tmp_path), default=str))
    assert set(new["scenarios"]) == {"dense", "vanilla", "random", "drop", "spri", "cluster"}
    diff = differences(old, new)
    assert not diff, f"{len(diff)} difference(s), first: {diff[:8]}"


def test_the_comparison_can_fail():
    assert differences({"a": [1.0, 2]}, {"a": [1.0 + 1e-3, 2]}) == ["/a[0]: 1.0 -> 1.001"]
    assert differences({"a": 1}, {"b": 1}) == ["/a: only on one side", "/b: only on one side"]
