"""The one gradient-projection extension (src/models/gradient_projection.py) under both of its users: SPRI's
stage 1 and SD-MoE, each checked against the projection computed here directly."""

from __future__ import annotations

import io

import torch
from helpers import upcycled, upcycling

from src.models.config import SDMoEConfig
from src.models.gradient_projection import GradientProjection
from src.models.sd_moe import SpectralDecoupler
from src.models.upcycling.spri import ResidualSpectrum
from src.training.config import StageConfig

STAGE1 = StageConfig(name="stage1", steps=1, trainable=["residual", "router"])


def step_through(ext: GradientProjection, model, seed: int = 0) -> dict[str, tuple]:
    """Random gradients through after_backward, a random 'optimizer update' through after_step:
    {key: (gradient given, gradient after, weight before, update given, weight after)}."""
    g = torch.Generator().manual_seed(seed)
    params = dict(ext.targets(model))
    assert params
    given = {k: torch.randn(p.shape, generator=g) for k, p in params.items()}
    for k, p in params.items():
        p.grad = given[k].clone()
    ext.after_backward(model, 0)
    before = {k: p.detach().clone() for k, p in params.items()}
    update = {k: torch.randn(p.shape, generator=g) for k, p in params.items()}
    with torch.no_grad():
        for k, p in params.items():
            p.add_(update[k])
    ext.after_step(model, 0)
    return {k: (given[k], p.grad.clone(), before[k], update[k], p.detach().clone()) for k, p in params.items()}


def test_residual_spectrum_projects_gradient_and_update_outside_the_principal_subspaces():
    model, _, result = upcycling("spri", energy=0.5)
    (ext,) = result.extensions
    ext.stage_start(model, STAGE1)
    for key, (grad, projected, before, update, after) in step_through(ext, model).items():
        u, v = ext.subspaces[key]
        left, right = torch.eye(u.shape[0]) - u @ u.t(), torch.eye(v.shape[0]) - v @ v.t()
        torch.testing.assert_close(projected, left @ grad @ right, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(after, before + left @ update @ right, atol=1e-5, rtol=1e-5)


def test_residual_spectrum_leaves_a_stage_that_does_not_train_the_residual_alone():
    model, _, result = upcycling("spri", energy=0.5)
    (ext,) = result.extensions
    ext.stage_start(model, StageConfig(name="stage2", steps=1, trainable=["all"]))
    for key, (grad, projected, before, update, after) in step_through(ext, model).items():
        assert torch.equal(projected, grad) and torch.equal(after, before + update), key


def test_spectral_decoupler_shares_the_in_subspace_part_of_gradient_and_update():
    model, _, _ = upcycled("random")
    sd = SpectralDecoupler(SDMoEConfig(rank=2, period=1, exact_update=True))
    weights = {k: p.detach().clone() for k, p in sd.targets(model)}
    for key, (grad, decoupled, before, update, after) in step_through(sd, model).items():
        vh = torch.linalg.svd(weights[key].double().reshape(-1, grad.shape[-1]), full_matrices=False)[2][:2]
        proj = (vh.t() @ vh).float()  # the top-2 input subspace of the stacked experts
        torch.testing.assert_close(sd.bases[key] @ sd.bases[key].t(), proj, atol=1e-5, rtol=0)
        torch.testing.assert_close(decoupled, decoupled_by_hand(grad, proj), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(after, before + decoupled_by_hand(update, proj), atol=1e-5, rtol=1e-5)


def decoupled_by_hand(delta: torch.Tensor, proj: torch.Tensor) -> torch.Tensor:
    """G' = mean_j(G_j) V V^T + G_e (I - V V^T)."""
    return delta - delta @ proj + (delta @ proj).mean(0, keepdim=True)


def test_residual_spectrum_owns_its_subspaces_and_saves_them():
    """SPRI's init hands P's subspaces to the extension (none are left on the model), and its state round-trips
    through the checkpoint's extensions.pt format."""
    model, _, result = upcycling("spri", energy=0.5)
    (ext,) = result.extensions
    assert not [n for n, _ in model.named_buffers() if "principal" in n]
    assert {k for k, _ in ext.targets(model)} == set(ext.subspaces) and ext.subspaces
    ext.stage_start(model, STAGE1)
    buffer = io.BytesIO()
    torch.save(ext.state_dict(), buffer)
    buffer.seek(0)
    restored = ResidualSpectrum("projected", {})
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert set(restored.subspaces) == set(ext.subspaces)
    for key, (u, v) in ext.subspaces.items():
        assert torch.equal(restored.subspaces[key][0], u) and torch.equal(restored.subspaces[key][1], v), key
        assert torch.equal(restored.residual_norm[key], ext.residual_norm[key]), key
