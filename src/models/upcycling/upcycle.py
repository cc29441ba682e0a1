"""Dense Whisper -> MoE Whisper with a registered strategy, plus the upcycling report."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, replace

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from src.data.text import IGNORE_INDEX
from src.models.backbone import encoder_audio_mask
from src.models.moe import MoEBlock, MoEConfig
from src.models.upcycling.base import STRATEGIES, UpcycleConfig
from src.models.whisper_moe import install_moe, moe_layers, record_moe_settings, whisper_ffn_layers
from src.utils.errors import UserError
from src.utils.structured import to_dataclass

log = logging.getLogger(__name__)

REPORT_RANK = 16  # top singular directions compared by subspace_overlap


def strategy_config(node) -> UpcycleConfig:
    """The `upcycle` group as its strategy's dataclass (unknown knobs are errors)."""
    name = node.get("strategy") if hasattr(node, "get") else node["strategy"]
    if name is None:
        raise UserError(f"upcycle.strategy: not set; conf/upcycle/base.yaml holds the shared defaults, not a strategy: "
                        f"choose upcycle=<one of {sorted(STRATEGIES)}>")
    if name not in STRATEGIES:
        raise UserError(f"upcycle.strategy: unknown strategy '{name}'; known: {sorted(STRATEGIES)}")
    schema = STRATEGIES[name].config
    return to_dataclass(schema, node)


@torch.no_grad()
def capture_ffn_inputs(model: nn.Module, layers: list[tuple[str, nn.Module]], batches: list[dict],
                       max_tokens: int = 16384, seed: int = 0) -> dict[str, torch.Tensor]:
    """The inputs of each chosen FFN (final_layer_norm outputs) over ``batches``, padding excluded.

    Decoder inputs are teacher-forced states. At most ``max_tokens`` per layer are kept: a seeded
    share of each batch, so memory stays bounded for large models and many calibration examples.
    """
    captured: dict[str, list[torch.Tensor]] = {name: [] for name, _ in layers}
    per_batch = -(-max_tokens // max(1, len(batches)))
    gen = torch.Generator().manual_seed(seed)
    state: dict = {}
    hooks = []
    for name, layer in layers:
        def hook(_m, _inp, out, name=name):
            mask = state["enc"] if name.startswith("encoder") else state["dec"]
            x = out[mask[:, : out.shape[1]].to(out.device)].float().cpu()
            captured[name].append(x[torch.randperm(x.shape[0], generator=gen)[:per_batch]])
        hooks.append(layer.final_layer_norm.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for batch in batches:
            feats = batch["input_features"]
            state["enc"] = encoder_audio_mask(feats.shape[-1], batch.get("feature_lengths"), feats.shape[0])
            state["dec"] = batch["decoder_attention_mask"].bool()
            dtype = next(model.parameters()).dtype
            model(input_features=feats.to(device, dtype), decoder_input_ids=batch["decoder_input_ids"].to(device),
                  decoder_attention_mask=batch["decoder_attention_mask"].to(device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {name: torch.cat(xs)[:max_tokens] for name, xs in captured.items() if xs}


@torch.no_grad()
def teacher_forced_ce(model: nn.Module, batches: list[dict]) -> float:
    """Token-weighted mean cross-entropy of the labels, teacher-forced, over ``batches`` (eval mode).

    The end-to-end cost of an init: per-layer output deviations do not say how errors compound
    through the stack, this does.
    """
    was_training = model.training
    model.eval()
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    total, tokens = 0.0, 0
    try:
        for batch in batches:
            logits = model(input_features=batch["input_features"].to(device, dtype),
                           decoder_input_ids=batch["decoder_input_ids"].to(device),
                           decoder_attention_mask=batch["decoder_attention_mask"].to(device)).logits
            labels = batch["labels"].to(device)
            total += float(F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                           ignore_index=IGNORE_INDEX, reduction="sum"))
            tokens += int((labels != IGNORE_INDEX).sum())
    finally:
        model.train(was_training)
    return total / max(1, tokens)


def _pairs(n: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(n) for b in range(a + 1, n)]


@torch.no_grad()
def expert_similarity(moe: MoEBlock, rank: int = REPORT_RANK) -> tuple[float, float]:
    """(mean pairwise cosine of flattened expert weights, mean overlap of top-`rank` subspaces).

    Overlap of experts a, b = ||V_a^T V_b||_F^2 / r for their top-r right singular vectors (1 = same
    subspace, about r/d for random ones), averaged over W1 and W2.
    """
    bank = moe.experts
    w1, w2 = bank.weight("w1").float(), bank.weight("w2").float()
    E = w1.shape[0]
    if E < 2:
        return 1.0, 1.0
    flat = F.normalize(torch.cat([w1.reshape(E, -1), w2.reshape(E, -1)], 1), dim=1)
    cos = flat @ flat.t()
    cos_mean = float(torch.stack([cos[a, b] for a, b in _pairs(E)]).mean())
    overlaps = []
    for w in (w1, w2):
        r = min(rank, min(w.shape[1:]))
        vs = [top_right_singular(w[e], r) for e in range(E)]
        overlaps += [float((vs[a].t() @ vs[b]).pow(2).sum() / r) for a, b in _pairs(E)]
    return cos_mean, sum(overlaps) / len(overlaps)


def top_right_singular(w: torch.Tensor, r: int) -> torch.Tensor:
    """(in, r) top right singular vectors: exact SVD for small matrices, randomized (svd_lowrank with
    power iterations) for large ones, where a full SVD per expert per layer dominated the report."""
    if min(w.shape) <= 512:
        return torch.linalg.svd(w, full_matrices=False)[2][:r].t()
    return torch.svd_lowrank(w, q=min(r + 10, *w.shape), niter=4)[2][:, :r]


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Total parameters, and active ones per token (routed experts counted k/E of the time)."""
    total = sum(p.numel() for p in model.parameters())
    inactive = 0.0
    for _, moe in moe_layers(model):
        k, E = moe.cfg.top_k, moe.cfg.num_experts
        for p in moe.experts.parameters():
            if p.dim() >= 2 and p.shape[0] == E:
                inactive += p.numel() * (1 - k / E)
    return {"total_parameters": total, "active_parameters": int(round(total - inactive))}


def _layer_seed(seed: int, name: str) -> int:
    return int(hashlib.sha1(f"{seed}:{name}".encode()).hexdigest()[:12], 16)


def labelled(batches: list[dict] | None) -> bool:
    """The end-to-end cost needs labels: batches from the data pipeline have them (hand-built ones may not)."""
    return bool(batches) and all("labels" in b for b in batches)


AUTO_STEPS = 10  # bisection steps of an `auto` knob in [0, 1]: resolution 1/1024


def search_knob(evaluate: Callable[[float], float], budget: float, steps: int = AUTO_STEPS) -> tuple[float, list]:
    """The smallest value in [0, 1] whose init-loss ratio stays within ``budget``, by bisection; 1 must
    satisfy it (for SPRI, energy 1 makes every expert the dense FFN). Returns (value, [(value, ratio)...])."""
    lo, hi, trace = 0.0, 1.0, []
    for _ in range(steps):
        mid = (lo + hi) / 2
        ratio = evaluate(mid)
        trace.append([mid, ratio])
        lo, hi = (lo, mid) if ratio <= budget else (mid, hi)
    return hi, trace


def upcycle_model(model: nn.Module, moe_cfg: MoEConfig, ucfg: UpcycleConfig, seed: int,
                  calib: list[dict] | None = None, progress: bool = True, heldout: list[dict] | None = None) -> dict:
    """Replace the chosen FFNs by MoE layers initialised by `ucfg.strategy`; returns the report.

    ``calib`` batches fit the data-aware strategies and `auto` knobs; the report's deviations and init loss
    are measured on ``heldout`` batches when given (else on ``calib``).
    """
    strategy = STRATEGIES[ucfg.strategy]
    dense_params = sum(p.numel() for p in model.parameters())
    report = {"strategy": ucfg.strategy, "num_experts": moe_cfg.num_experts, "top_k": moe_cfg.top_k,
              "dense_parameters": dense_params, "layers": []}
    if not strategy.is_moe:
        report.update(num_experts=1, top_k=1, total_parameters=dense_params, active_parameters=dense_params)
        return report
    moe_cfg.check()
    t0 = time.perf_counter()
    layers = whisper_ffn_layers(model, moe_cfg.where, moe_cfg.every)
    if strategy.needs_calibration and not calib:
        raise UserError(f"upcycle={ucfg.strategy} needs calibration data (upcycle.calibration_examples "
                         "training examples); none were given")
    measure = heldout or calib
    inputs = capture_ffn_inputs(model, layers, calib, ucfg.calibration_tokens, seed) if calib else {}
    measured = capture_ffn_inputs(model, layers, heldout, ucfg.calibration_tokens, seed) if heldout else inputs
    dense_ce = teacher_forced_ce(model, measure) if labelled(measure) else None
    knob = strategy.auto_knob(ucfg)
    if knob is not None and not labelled(calib):
        raise UserError(f"upcycle.{knob}=auto needs labelled calibration batches (upcycle.calibration_examples)")
    fit_ce = (dense_ce if measure is calib else teacher_forced_ce(model, calib)) if knob is not None else None
    dense = {name: (layer.fc1, layer.fc2) for name, layer in layers}
    state = strategy.prepare_layers(model, layers, calib or [], ucfg, inputs, moe_cfg.num_experts)
    moes = {}
    for name, layer in layers:
        fc1 = layer.fc1
        d_ff, d_model = fc1.weight.shape
        moes[name] = MoEBlock(d_model, d_ff, moe_cfg).to(fc1.weight.device, fc1.weight.dtype)
        install_moe(model, name, moes[name])

    def init_all(cfg: UpcycleConfig, show: bool = False) -> dict[str, dict]:
        return {name: strategy.init_experts(moe, *dense[name], cfg, torch.Generator().manual_seed(
                    _layer_seed(seed, name)), state.get(name))
                for name, moe in tqdm(moes.items(), desc=f"upcycling ({ucfg.strategy})", disable=not show)}

    if knob is not None:
        budget = float(ucfg.max_init_loss_ratio)

        def evaluate(value: float) -> float:
            init_all(replace(ucfg, **{knob: value}))
            return teacher_forced_ce(model, calib) / fit_ce

        value, trace = search_knob(evaluate, budget)
        ucfg = replace(ucfg, **{knob: value})
        report["auto"] = {"knob": knob, "value": value, "max_init_loss_ratio": budget, "fit_dense_ce": fit_ce,
                          "trace": trace}
    extras = init_all(ucfg, show=progress)
    for name, moe in moes.items():
        extra = extras[name]
        row = {"name": name, "output_deviation": None, "expert_cosine_mean": None, "subspace_overlap": None,
               "router_top1_mean": None, "router_z_loss": None,
               "reconstruction_error": extra.pop("reconstruction_error", None), **extra}
        x = measured.get(name)
        if x is not None and x.numel():
            fc1, fc2 = dense[name]
            with torch.no_grad():
                moe.eval()
                x = x.to(fc1.weight.device, fc1.weight.dtype)
                dense_out = fc2(F.gelu(fc1(x)))
                row["output_deviation"] = float((moe(x)[0] - dense_out).norm() / dense_out.norm().clamp_min(1e-12))
                logits = moe.router(x)  # a saturated router (top-1 near 1) never leaves its init choices
                row["router_top1_mean"] = float(logits.softmax(-1).max(-1).values.mean())
                row["router_z_loss"] = float(logits.logsumexp(-1).pow(2).mean())
        row["expert_cosine_mean"], row["subspace_overlap"] = expert_similarity(moe)
        report["layers"].append(row)
    record_moe_settings(model, moe_cfg, {k: v for k, v in asdict(ucfg).items()})
    report.update(parameter_counts(model))
    if dense_ce is not None:
        upcycled_ce = teacher_forced_ce(model, measure)
        report["init_loss"] = {"dense_ce": dense_ce, "upcycled_ce": upcycled_ce,
                               "ratio": upcycled_ce / dense_ce if dense_ce > 0 else None,
                               "examples": sum(len(b["input_features"]) for b in measure),
                               "held_out": bool(heldout)}
    report["upcycle_seconds"] = time.perf_counter() - t0
    return report
