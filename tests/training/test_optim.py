"""A stage's optimizer (src/training/optim.py): weight decay by parameter role, the same for every strategy."""

from __future__ import annotations

import torch
from helpers import tiny_whisper, upcycled

from src.models.whisper_moe import moe_blocks
from src.training.optim import build_optimizer


def decay_step(model: torch.nn.Module, lr: float = 0.1, wd: float = 0.5) -> dict[str, torch.Tensor]:
    """One AdamW step whose gradients are all zero: only weight decay moves a parameter; returns the moves."""
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer, _ = build_optimizer([model], lr, wd, 0.999, "constant", 0, 1)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    return {n: p.detach() - before[n] for n, p in model.named_parameters()}


def test_dense_and_vanilla_take_the_same_decay_on_the_same_parameters():
    dense, vanilla = tiny_whisper(), upcycled("vanilla")[0]
    moved_dense, moved_vanilla = decay_step(dense), decay_step(vanilla)
    name = "model.decoder.layers.1"
    # dense FFN: weights shrink by lr * wd = 5%, biases do not move
    fc1 = dict(dense.named_parameters())[f"{name}.fc1.weight"]
    assert torch.allclose(moved_dense[f"{name}.fc1.weight"], -0.05 * fc1 / 0.95, atol=1e-6)
    assert moved_dense[f"{name}.fc1.bias"].abs().max() == 0 and moved_dense[f"{name}.fc2.bias"].abs().max() == 0
    # vanilla's experts: the same roles, the same decay (the 2-D expert biases no longer decay like matrices)
    bank = dict(moe_blocks(vanilla))["decoder.layers.1"].experts
    prefix = next(n for n, m in vanilla.named_modules() if m is bank)
    assert moved_vanilla[f"{prefix}.b1"].abs().max() == 0 and moved_vanilla[f"{prefix}.b2"].abs().max() == 0
    assert torch.allclose(moved_vanilla[f"{prefix}.w1"], -0.05 * bank.w1.detach() / 0.95, atol=1e-6)
    # norms never decay, embeddings do, in both
    for model, moved in ((dense, moved_dense), (vanilla, moved_vanilla)):
        assert all(moved[n].abs().max() == 0 for n, _ in model.named_parameters() if "layer_norm" in n)
        assert moved["model.decoder.embed_tokens.weight"].abs().max() > 0
