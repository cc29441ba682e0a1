"""A spawned child of a Hydra joblib (loky) worker: the worker's process-wide start method is 'loky', which a
spawned child cannot set, so every multi-seed toy pretraining (`make demo-seeds`, `make study` from a cold cache)
died with `cannot find context for 'loky'`. pipelines/pretrain.py spawns under the standard method."""

from __future__ import annotations

import multiprocessing


def _child(rank: int, path: str) -> None:
    with open(f"{path}.{rank}", "w") as f:
        f.write("ok")


def _spawn_in_worker(path: str, fixed: bool) -> str:
    """Runs inside a loky worker: spawn two children the way pretrain_toy does."""
    import torch

    from src.pipelines.pretrain import standard_start_method

    method = multiprocessing.get_start_method(allow_none=True)
    try:
        if fixed:
            with standard_start_method():
                torch.multiprocessing.spawn(_child, nprocs=2, args=(path,))
        else:
            torch.multiprocessing.spawn(_child, nprocs=2, args=(path,))
    except Exception as e:  # noqa: BLE001 - what the worker saw
        return f"{method}: {type(e).__name__}"
    return f"{method}: ok, then {multiprocessing.get_start_method(allow_none=True)}"


def test_children_spawn_from_a_loky_worker(tmp_path):
    from joblib import Parallel, delayed

    out = Parallel(n_jobs=2, backend="loky")(delayed(_spawn_in_worker)(str(tmp_path / f"w{i}"), fixed)
                                             for i, fixed in enumerate((False, True)))
    assert out[0] == "loky: ProcessExitedException"  # the failure the fix is for, as the worker sees it
    assert out[1] == "loky: ok, then loky"  # spawned under 'spawn', the worker's own method restored
    assert (tmp_path / "w1.0").read_text() == "ok" and (tmp_path / "w1.1").read_text() == "ok"
