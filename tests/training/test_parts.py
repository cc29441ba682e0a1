"""The trainer's parts on their own: the optimizer step and its non-finite policy, the extensions' composite and
the runtime's single-process collectives (the loop that uses them: test_trainer.py)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from src.training.config import TrainerConfig
from src.training.extensions import Extensions
from src.training.runtime import Runtime, autocast_dtype
from src.training.step import NonFinitePolicy, optimizer_step
from src.utils.errors import NonFiniteError
from src.utils.extension import TrainerExtension


def test_a_finite_step_updates_and_a_non_finite_one_drops_the_gradients_and_leaves_the_weights():
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.5)
    w.grad = torch.tensor([3.0, 4.0, 0.0])
    ok, norm = optimizer_step(opt, [w], clip_norm=1.0, bad_loss=False)
    assert ok and float(norm) == pytest.approx(5.0)  # the norm before clipping
    assert torch.allclose(w.detach(), torch.tensor([1 - 0.5 * 0.6, 1 - 0.5 * 0.8, 1.0]))  # clipped to norm 1
    before = w.detach().clone()
    w.grad = torch.tensor([float("nan"), 1.0, 1.0])
    ok, norm = optimizer_step(opt, [w], clip_norm=1.0, bad_loss=False)
    assert not ok and not torch.isfinite(norm) and w.grad is None and torch.equal(w.detach(), before)
    w.grad = torch.ones(3)
    ok, _ = optimizer_step(opt, [w], clip_norm=None, bad_loss=True)  # a non-finite loss: no update either
    assert not ok and torch.equal(w.detach(), before)


def test_the_policy_counts_skips_and_stops_past_either_limit_naming_the_last_good_checkpoint():
    policy = NonFinitePolicy(max_steps=2, max_fraction=0.5)
    good = Path("checkpoints/step-00000004")
    policy.skipped("s", 5, 100, 5, "loss", good)
    policy.skipped("s", 6, 100, 6, "loss", good)
    assert (policy.run_total, policy.stage_total, policy.first) == (2, 2, 6)  # first: 1-based global step
    with pytest.raises(NonFiniteError, match=r"stage s step 8: 3 non-finite steps in stage s .*max_nonfinite_steps=2"
                                             r".*last good checkpoint: checkpoints/step-00000004"):
        policy.skipped("s", 7, 100, 7, "gradient norm", good)
    fraction = NonFinitePolicy(max_steps=100, max_fraction=0.5)
    fraction.skipped("a", 0, 4, 0, "loss", None)
    fraction.skipped("a", 1, 4, 1, "loss", None)
    fraction.start_stage()  # a new stage's share starts at zero; the run's count and first step stay
    fraction.skipped("b", 0, 4, 4, "loss", None)
    assert (fraction.run_total, fraction.stage_total, fraction.first) == (3, 1, 1)
    fraction.skipped("b", 1, 4, 5, "loss", None)
    with pytest.raises(NonFiniteError, match=r"max_nonfinite_fraction=0.5 of the stage's 4.*none yet"):
        fraction.skipped("b", 2, 4, 6, "loss", None)


class Recorder(TrainerExtension):
    def __init__(self, name: str, calls: list, state: dict | None = None) -> None:
        self.name, self.calls, self.state = name, calls, state or {}

    @contextlib.contextmanager
    def _ctx(self):
        self.calls.append(f"enter {self.name}")
        yield
        self.calls.append(f"exit {self.name}")

    def before_step(self, model, batch, step):
        return self._ctx()

    def loss(self, model, batch, out, routing):
        return {"aux": torch.tensor(1.0 if self.name == "a" else 2.0)}

    def state_dict(self) -> dict:
        return dict(self.state)

    def load_state_dict(self, state: dict) -> None:
        self.state = dict(state)


class StageWatcher(Recorder):
    def stage_start(self, model, stage) -> None:
        self.calls.append(f"stage {self.name}")


class Head(torch.nn.Linear, TrainerExtension):
    pass


def test_the_composite_fans_out_in_order_and_keys_each_state_by_position_and_class():
    calls: list = []
    exts = Extensions([Recorder("a", calls, {"k": 1}), StageWatcher("b", calls), Head(2, 3)])
    with exts.before_step(None, {}, 0):
        calls.append("forward")
    assert calls == ["enter a", "enter b", "forward", "exit b", "exit a"]  # one context per extension, nested
    assert [(n, float(v)) for n, v in exts.losses(None, {}, None, {})] == [("aux", 1.0), ("aux", 2.0)]  # both added
    assert exts.hooked_stage_start == [exts[1]]
    calls.clear()
    exts.stage_start(None, "s", only_hooked=True)
    assert calls == ["stage b"]
    assert exts.modules == [exts[2]] and len(exts.params) == 2  # the head's weight and bias train with the model
    state = exts.state_dict()
    assert set(state) == {"0:Recorder", "2:Head"} and state["0:Recorder"] == {"k": 1}  # b's empty state is not saved
    fresh = Extensions([Recorder("a", []), StageWatcher("b", []), Head(2, 3)])
    fresh.load_state_dict(state | {"5:Gone": {"x": 1}})  # a key nobody holds is ignored
    assert fresh[0].state == {"k": 1} and fresh[1].state == {}
    with pytest.raises(TypeError, match="object is not a TrainerExtension"):
        Extensions([object()])


def test_a_single_process_runtime_decides_alone():
    rt = Runtime.set_up(TrainerConfig(device="cpu", tune_cpu_malloc=False), distributed=False)
    assert rt.device == torch.device("cpu") and rt.dtype is None and rt.is_main
    assert rt.any_rank(True) and not rt.any_rank(False)
    assert rt.sum(1.5, 3) == [1.5, 3] and rt.mean(2.5) == 2.5
    assert rt.fused_optimizer(torch.nn.Linear(1, 1))  # the CPU's fused AdamW, unsharded
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    assert autocast_dtype("auto", torch.device("cpu")) is None
