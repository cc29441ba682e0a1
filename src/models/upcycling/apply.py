"""Dense Whisper -> MoE Whisper with a registered strategy, and the upcycling report (calibration.py measures,
diagnostics.py compares the experts)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Generic

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from src.models.config import MoEConfig
from src.models.moe import MoEBlock, router_top1, router_z
from src.models.upcycling import STRATEGIES  # through the package: every strategy registered, however reached
from src.models.upcycling.base import Calibration, Cfg, State, Strategy
from src.models.upcycling.calibration import TeacherForced, capture_ffn_inputs, labelled, teacher_forced
from src.models.upcycling.config import UpcycleConfig
from src.models.upcycling.diagnostics import expert_similarity, parameter_counts
from src.models.whisper_moe import install_moe, moe_blocks, record_moe_settings, whisper_ffn_layers
from src.utils.errors import UserError
from src.utils.extension import TrainerExtension
from src.utils.seeding import name_seed

log = logging.getLogger(__name__)

AUTO_STEPS = 10  # bisection steps of an `auto` knob in [0, 1]: resolution 1/1024
NEAR_VANILLA = 0.999  # an `auto` value at or above it is reported as (near) vanilla upcycling


def search_knob(evaluate: Callable[[float], float], budget: float, steps: int = AUTO_STEPS) -> tuple[float, list, bool]:
    """The smallest *measured* value in [0, 1] whose measure stays within ``budget``, by bisection; returns
    (value, [(value, measure), ...], budget met).

    The measure tends to fall as the value rises, down to the dense model's at 1 (for SPRI, energy 1 makes
    every expert the dense FFN), but it is not monotone (whisper-base's KL: 3.27e-4 at energy 0.94, 4.05e-4 at
    0.9475): bisection assumes it is, so an unmeasured value below the one returned may also be within budget.
    Every point that met the budget became the upper end in turn, so the value returned is the smallest
    measured point within it. A non-finite measure counts as over budget (the caller warns). When no bisection
    point met the budget the end point 1 is evaluated too, so the value returned has always been measured; the
    caller says when even that misses the budget.
    """
    lo, hi, trace = 0.0, 1.0, []
    for _ in range(steps):
        mid = (lo + hi) / 2
        measure = evaluate(mid)
        trace.append([mid, measure])
        lo, hi = (lo, mid) if within(measure, budget) else (mid, hi)
    if hi == 1.0:
        measure = evaluate(1.0)
        trace.append([1.0, measure])
        return 1.0, trace, within(measure, budget)
    return hi, trace, True


def within(measure: float, budget: float) -> bool:
    return math.isfinite(measure) and measure <= budget


@torch.no_grad()
def block_deviation(moe: MoEBlock, fc1: nn.Linear, fc2: nn.Linear, x: torch.Tensor) -> dict[str, float]:
    """The upcycled block against the dense FFN on captured inputs ``x``, as inference reads it (eval mode,
    restored after): relative output deviation, and the router's mean top-1 probability and z-loss (a
    saturated router, top-1 near 1, never leaves its init choices)."""
    was_training = moe.training
    moe.eval()
    try:
        x = x.to(fc1.weight.device, fc1.weight.dtype)
        dense_out = fc2(F.gelu(fc1(x)))
        deviation = (moe(x)[0] - dense_out).norm() / dense_out.norm().clamp_min(1e-12)
        logits = moe.router(x)
    finally:
        moe.train(was_training)
    return {"output_deviation": float(deviation), "router_top1_mean": float(router_top1(logits)),
            "router_z_loss": float(router_z(logits))}


@dataclass
class ExpertInit(Generic[Cfg, State]):
    """One upcycling in progress: the new blocks, the dense FFNs they replace, the strategy's per-layer state."""

    strategy: Strategy[Cfg, State]
    blocks: dict[str, MoEBlock]
    dense: dict[str, tuple[nn.Linear, nn.Linear]]
    state: dict[str, State]
    seed: int

    def __call__(self, cfg: Cfg, show: bool = False) -> dict[str, dict]:
        """Fill every block by the strategy at ``cfg`` (again, if called again: each call overwrites all)."""
        return {name: self.strategy.init_experts(block, *self.dense[name], cfg, torch.Generator().manual_seed(
                    name_seed(self.seed, name)), self.state[name])
                for name, block in tqdm(self.blocks.items(), desc=f"upcycling ({cfg.strategy})", disable=not show)}


@dataclass
class Upcycled:
    """An upcycling's outcome: its report, and the trainer extensions the strategy's training needs, holding
    what the init handed them (SPRI: P's subspaces)."""

    report: dict
    extensions: list[TrainerExtension]


def upcycle_model(model: nn.Module, moe_cfg: MoEConfig, ucfg: UpcycleConfig, seed: int, **kw: Any) -> dict:
    """`upcycle`'s report alone (same keywords), for a model that is not trained next: benchmarks, reports."""
    return upcycle(model, moe_cfg, ucfg, seed, **kw).report


def upcycle(model: nn.Module, moe_cfg: MoEConfig, ucfg: UpcycleConfig, seed: int,
            calib: list[dict] | None = None, progress: bool = True, heldout: list[dict] | None = None,
            budget: list[dict] | None = None, budget_heldout: list[dict] | None = None) -> Upcycled:
    """Replace the chosen FFNs by MoE layers initialised by `ucfg.strategy`. ``calib`` fits the data-aware
    strategies and, without ``budget`` batches (the same clips, other targets: `upcycle.budget_task`), the `auto`
    knobs; deviations read ``heldout`` (else ``calib``), init_loss ``budget_heldout`` / ``budget``."""
    strategy = STRATEGIES[ucfg.strategy]
    dense_params = sum(p.numel() for p in model.parameters())
    report = {"strategy": ucfg.strategy, "num_experts": moe_cfg.num_experts, "top_k": moe_cfg.top_k,
              "dense_parameters": dense_params, "layers": []}
    if not strategy.facts.is_moe:
        report.update(num_experts=1, top_k=1, total_parameters=dense_params, active_parameters=dense_params)
        return Upcycled(report, [])
    budget_batches = budget or calib  # what the auto knob's budget reads
    loss_batches = (budget_heldout or budget) if budget else (heldout or calib)  # the report's init_loss
    _check_upcyclable(model, moe_cfg, ucfg, strategy, calib, budget_batches)
    t0 = time.perf_counter()
    layers = whisper_ffn_layers(model, moe_cfg.where, moe_cfg.every)
    inputs = capture_ffn_inputs(model, layers, calib, ucfg.calibration_tokens, seed) if calib else {}
    heldout_inputs = capture_ffn_inputs(model, layers, heldout, ucfg.calibration_tokens, seed) if heldout else inputs
    searching = strategy.auto_knob(ucfg) is not None
    dense_loss, dense_budget = _dense_side(model, loss_batches, budget_batches if searching else None)
    state = strategy.fit(Calibration(model, layers, calib or [], inputs, moe_cfg.num_experts), ucfg)
    init = ExpertInit(strategy, _install_blocks(model, layers, moe_cfg), {n: (l.fc1, l.fc2) for n, l in layers},
                      state, seed)
    warnings: list[str] = []
    if dense_budget is not None:
        ucfg = _choose_auto_knob(model, init, ucfg, budget_batches, dense_budget, report, warnings)
    extras = init(ucfg, show=progress)
    report["layers"] = [_layer_row(name, block, extras[name], init.dense[name], heldout_inputs.get(name), warnings)
                        for name, block in init.blocks.items()]
    record_moe_settings(model, moe_cfg, {k: v for k, v in asdict(ucfg).items()})
    report.update(parameter_counts(model))
    if dense_loss is not None:  # the init's disruption, on the same scale for every strategy (vanilla: 0)
        report["init_loss"] = _init_loss(model, loss_batches, dense_loss,
                                         bool(budget_heldout) if budget else bool(heldout))
    for text in warnings:
        log.warning("upcycle=%s: %s", ucfg.strategy, text)
    report["warnings"] = warnings
    report["upcycle_seconds"] = time.perf_counter() - t0
    return Upcycled(report, strategy.extensions(ucfg, state))


def _dense_side(model: nn.Module, loss_batches: list[dict] | None, budget_batches: list[dict] | None
                ) -> tuple[TeacherForced | None, TeacherForced | None]:
    """The dense model's teacher-forced pass on ``loss_batches`` (the report's init_loss) and on ``budget_batches``
    (an auto knob's budget; one pass when they are the same batches)."""
    dense_loss = teacher_forced(model, loss_batches, keep_logprobs=True) if loss_batches else None
    if not budget_batches:
        return dense_loss, None
    same = loss_batches is budget_batches
    return dense_loss, dense_loss if same else teacher_forced(model, budget_batches, keep_logprobs=True)


def _check_upcyclable(model: nn.Module, moe_cfg: MoEConfig, ucfg: UpcycleConfig, strategy: Strategy,
                      calib: list[dict] | None, budget_batches: list[dict] | None) -> None:
    """Stop with one line before any work: a bad knob (the Python API gets the command line's checks: residual_scale
    0 or -1 stop here), an MoE model, missing calibration data, an unmeasurable budget."""
    ucfg.check()
    moe_cfg.check()
    already = [name for name, _ in moe_blocks(model)]
    if already:  # its MoE layers have no fc1/fc2 to upcycle
        raise UserError(f"upcycle={ucfg.strategy}: the model already has {len(already)} MoE layer(s) ({already[0]}, "
                        "...): it is an upcycled checkpoint; set model.name_or_path to a dense Whisper to upcycle")
    if strategy.facts.needs_calibration and not calib:
        raise UserError(f"upcycle={ucfg.strategy} needs calibration data (upcycle.calibration_examples "
                         "training examples); none were given")
    knob = strategy.auto_knob(ucfg)
    if knob is not None and not budget_batches:
        raise UserError(f"upcycle.{knob}=auto measures the init on calibration batches: set "
                        "upcycle.calibration_examples >= 1")
    if knob is not None and ucfg.auto_measure == "ce_ratio" and not labelled(budget_batches):
        raise UserError(f"upcycle.{knob}=auto with auto_measure=ce_ratio needs labelled calibration batches")


def _install_blocks(model: nn.Module, layers: list[tuple[str, nn.Module]], moe_cfg: MoEConfig
                    ) -> dict[str, MoEBlock]:
    """A new (uninitialised) MoE block in each layer's FFN slot, on the dense weights' device and dtype."""
    blocks = {}
    for name, layer in layers:
        fc1 = layer.fc1
        d_ff, d_model = fc1.weight.shape
        blocks[name] = MoEBlock(d_model, d_ff, moe_cfg).to(fc1.weight.device, fc1.weight.dtype)
        install_moe(model, name, blocks[name])
    return blocks


def _choose_auto_knob(model: nn.Module, init: ExpertInit, ucfg: UpcycleConfig, budget_batches: list[dict],
                      dense_budget: TeacherForced, report: dict, warnings: list[str]) -> UpcycleConfig:
    """The `auto` knob's value: the smallest within the budget (search_knob), recorded and warned about."""
    knob, budget = init.strategy.auto_knob(ucfg), float(ucfg.auto_budget)

    def evaluate(value: float) -> float:
        init(replace(ucfg, **{knob: value}))
        if ucfg.auto_measure == "kl":
            return teacher_forced(model, budget_batches, dense_budget.logprobs).kl
        return teacher_forced(model, budget_batches).ce / dense_budget.ce

    value, trace, met = search_knob(evaluate, budget)
    bad = [v for v, m in trace if not math.isfinite(m)]
    report["auto"] = {"knob": knob, "value": value, "measure": ucfg.auto_measure, "budget": budget,
                      "budget_met": met, "fit_dense_ce": dense_budget.ce, "trace": trace, "non_finite": bad}
    if bad:
        warnings.append(f"upcycle.{knob}=auto: {len(bad)} of {len(trace)} search points gave a non-finite "
                        f"{ucfg.auto_measure} (counted as over budget): {knob} = "
                        + ", ".join(f"{v:.4g}" for v in bad))
    if not met:
        warnings.append(f"upcycle.{knob}=auto: no value in [0, 1] keeps {ucfg.auto_measure} within {budget:g} "
                        f"(at 1: {trace[-1][1]:.4g}); the init is {knob}=1")
    elif value >= NEAR_VANILLA:
        warnings.append(f"upcycle.{knob}=auto chose {value:.4f}: (near) vanilla upcycling, the budget "
                        f"{ucfg.auto_measure} <= {budget:g} leaves almost no residual")
    return replace(ucfg, **{knob: value})


def _layer_row(name: str, block: MoEBlock, extra: dict, dense: tuple[nn.Linear, nn.Linear],
               x: torch.Tensor | None, warnings: list[str]) -> dict:
    """The report's row of one upcycled layer (the strategy's extras, deviations, expert similarity)."""
    if "warning" in extra:
        warnings.append(f"{name}: {extra.pop('warning')}")
    row = {"name": name, "output_deviation": None, "expert_cosine_mean": None, "subspace_overlap": None,
           "router_top1_mean": None, "router_z_loss": None,
           "reconstruction_error": extra.pop("reconstruction_error", None), **extra}
    if x is not None and x.numel():
        row.update(block_deviation(block, *dense, x))
    row["expert_cosine_mean"], row["subspace_overlap"] = expert_similarity(block)
    return row


def _init_loss(model: nn.Module, measure: list[dict], before: TeacherForced, held_out: bool) -> dict:
    """The upcycled model against the dense one (``before``) on ``measure``: CE, their ratio, and the KL."""
    upcycled = teacher_forced(model, measure, before.logprobs)
    return {"dense_ce": before.ce, "upcycled_ce": upcycled.ce,
            "ratio": upcycled.ce / before.ce if before.ce else None, "kl": upcycled.kl,
            "examples": sum(len(b["input_features"]) for b in measure), "held_out": held_out}
