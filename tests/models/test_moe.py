"""The MoE layer: dispatch equals a per-token loop, router losses match their formulas with
padding masked, capacity limits, and parameter groups."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from src.models.config import MoEConfig
from src.models.moe import MoEBlock, capacity_mask
from src.models.router_losses import ROUTER_LOSSES, MaskedRouting, MoELoss
from src.training.param_groups import PARAM_GROUPS, owners_of


def random_moe(**kw) -> MoEBlock:
    torch.manual_seed(0)
    moe = MoEBlock(16, 32, MoEConfig(num_experts=4, top_k=2, **kw))
    for p in moe.parameters():
        torch.nn.init.normal_(p, std=0.2)
    return moe


def reference(moe: MoEBlock, x: torch.Tensor) -> torch.Tensor:
    """Token by token, expert by expert: the definition the dispatch must equal."""
    logits = x.float() @ moe.router.weight.float().t()
    probs = logits.softmax(-1)
    w, idx = probs.topk(moe.cfg.top_k, -1)
    if moe.cfg.renormalize:
        w = w / w.sum(-1, keepdim=True)
    w1, w2 = moe.experts.weight("w1"), moe.experts.weight("w2")
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(moe.cfg.top_k):
            e = idx[t, j]
            h = F.gelu(w1[e] @ x[t] + moe.experts.b1[e])
            out[t] += w[t, j] * (w2[e] @ h + moe.experts.b2[e])
    return out


@pytest.fixture(params=["grouped", "loop"])
def dispatch_path(request):
    """Both dispatch paths (`moe.dispatch`): torch's grouped matmul and the per-expert loop."""
    from src.models import dispatch

    if request.param == "grouped" and not dispatch._GROUPED:
        pytest.skip("this torch has no _grouped_mm")
    return request.param


@pytest.mark.parametrize("renormalize", [True, False])
def test_dispatch_matches_the_definition_forward_and_backward(renormalize, dispatch_path):
    moe = random_moe(renormalize=renormalize, dispatch=dispatch_path)
    x = torch.randn(2, 7, 16, requires_grad=True)
    out, routing = moe(x)
    assert routing.logits.shape == (14, 4) and routing.idx.shape == routing.weights.shape == (14, 2)
    ref = reference(moe, x.reshape(-1, 16)).reshape(2, 7, 16)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), [x, *moe.parameters()])
    ref_grads = torch.autograd.grad((ref * g).sum(), [x, *moe.parameters()])
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_router_losses_match_formulas_and_mask_padding():
    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0]])
    idx = torch.tensor([[0, 1], [1, 0], [2, 0]])
    p = logits.softmax(-1)
    f = torch.tensor([3, 2, 1, 0]) / 6
    expected = 4 * float((f * p.mean(0)).sum())
    assert float(ROUTER_LOSSES["balance"](MaskedRouting(logits, idx, 4))) == pytest.approx(expected, rel=1e-6)
    z = sum(math.log(sum(math.exp(v) for v in row)) ** 2 for row in logits.tolist()) / 3
    assert float(ROUTER_LOSSES["z"](MaskedRouting(logits, idx, 4))) == pytest.approx(z, rel=1e-6)
    # Perfect balance gives 1: uniform probabilities, uniform assignment.
    balanced = MaskedRouting(torch.zeros(4, 4), torch.tensor([[0, 1], [2, 3], [0, 1], [2, 3]]), 4)
    assert float(ROUTER_LOSSES["balance"](balanced)) == pytest.approx(1.0)

    moe = random_moe(balance_coef=1.0, z_coef=1.0)
    x = torch.randn(1, 5, 16)
    mask = torch.tensor([[True, True, True, False, False]])
    loss = MoELoss({"balance": 1.0, "z": 1.0})
    model = torch.nn.Module()
    model.decoder = torch.nn.Module()
    model.decoder.mlp = moe
    out = loss.loss(model, {"decoder_attention_mask": mask}, None, {"decoder": moe(x)[1]})
    # Same as computing on the 3 real tokens alone.
    alone = loss.loss(model, {"decoder_attention_mask": mask[:, :3]}, None, {"decoder": moe(x[:, :3])[1]})
    assert set(out) == {"router_balance", "router_z"}
    for k in out:
        torch.testing.assert_close(out[k], alone[k])


def test_capacity_keeps_first_choices_up_to_capacity():
    idx = torch.tensor([[0, 1], [0, 2], [0, 1], [0, 3]])  # expert 0 is everyone's first choice
    keep = capacity_mask(idx, num_experts=4, factor=1.0)  # capacity = ceil(8/4) = 2 per expert
    assert keep[:, 0].tolist() == [1, 1, 0, 0] and keep[:, 1].tolist() == [1, 1, 1, 1]
    moe = random_moe(capacity_factor=0.5)
    assert torch.isfinite(moe(torch.randn(3, 16))[0]).all()


def test_padding_neither_counts_toward_capacity_nor_takes_a_real_tokens_room():
    idx = torch.tensor([[0, 1], [0, 2], [0, 1], [0, 3]])
    pad = torch.tensor([False, True, True, True])  # token 0 is padding (left-padded here, to test the order)
    keep = capacity_mask(idx, num_experts=4, factor=1.0, token_mask=pad)  # capacity = ceil(6/4) = 2 (3 real)
    # real first choices of expert 0 (tokens 1, 2) fill it; padding's first choice would have come first
    assert keep[:, 0].tolist() == [0, 1, 1, 0] and keep[:, 1].tolist() == [1, 1, 1, 1]
    no_pad = capacity_mask(idx, num_experts=4, factor=1.0, token_mask=torch.ones(4, dtype=torch.bool))
    assert torch.equal(no_pad, capacity_mask(idx, num_experts=4, factor=1.0))  # an all-real mask changes nothing


def test_dropped_assignments_cost_no_expert_compute_and_contribute_nothing(monkeypatch, dispatch_path):
    import src.models.dispatch as dispatch

    moe = random_moe(capacity_factor=0.5, dispatch=dispatch_path)
    rows = []
    real = dispatch.looped_ffn
    monkeypatch.setattr(dispatch, "looped_ffn", lambda xs, *a: rows.append(xs.shape[0]) or real(xs, *a))
    x = torch.randn(12, 16)
    out, r = moe(x, token_mask=torch.arange(12) < 9)  # 3 padding tokens at the end
    kept = r.weights != 0
    assert 0 < int(kept.sum()) < 24 and int(kept[9:].sum()) <= int(kept.sum())
    if dispatch_path == "loop":
        assert rows == [int(kept.sum())]  # only the kept assignments ran through the experts
    ref = torch.zeros_like(x)  # the definition, with dropped assignments left out
    w1, w2 = moe.experts.weight("w1"), moe.experts.weight("w2")
    for t in range(12):
        for j in range(2):
            if kept[t, j]:
                e = r.idx[t, j]
                h = F.gelu(w1[e] @ x[t] + moe.experts.b1[e])
                ref[t] += r.weights[t, j] * (w2[e] @ h + moe.experts.b2[e])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_the_collector_hands_each_capacity_block_its_sides_token_mask():
    from src.models.whisper_moe import RoutingCollector

    model = torch.nn.Module()
    model.model = torch.nn.Module()
    model.model.decoder = torch.nn.Module()
    model.model.decoder.layers = torch.nn.ModuleList([torch.nn.Module()])
    model.model.decoder.layers[0].mlp = random_moe(capacity_factor=1.0)
    seen = []
    block = model.model.decoder.layers[0].mlp
    collector = RoutingCollector(model)
    assert collector.needs_masks  # a capacity block: the trainer computes the batch's masks for it
    block.register_forward_pre_hook(lambda m, a, kw: seen.append(kw.get("token_mask")), with_kwargs=True)  # after
    mask = torch.tensor([[True, True, False]])
    with collector.collect({"decoder": mask, "encoder": None}) as records:
        block(torch.randn(1, 3, 16))
        assert set(records) == {"decoder.layers.0"}
    block(torch.randn(1, 3, 16))  # outside collect(): no mask
    assert len(seen) == 2 and torch.equal(seen[0], mask) and seen[1] is None


def test_moe_parameter_groups():
    model = torch.nn.Module()
    model.layer = torch.nn.Module()
    model.layer.mlp = random_moe(shared_expert=True)
    owners = owners_of(model)
    pick = {g: sorted(n.split("mlp.")[1] for n in owners if PARAM_GROUPS[g](n, owners[n]))
            for g in ("router", "residual", "experts", "shared_expert", "ffn")}
    assert pick["router"] == ["router.weight"]
    assert pick["residual"] == ["experts.w1", "experts.w2"]  # the expert weight matrices, not their biases
    assert pick["experts"] == ["experts.b1", "experts.b2", "experts.w1", "experts.w2"]
    assert len(pick["shared_expert"]) == 4
    assert pick["ffn"] == sorted(pick["experts"] + pick["shared_expert"])  # by module type: no router in ffn


def test_bad_moe_settings_are_clear():
    with pytest.raises(ValueError, match="moe.top_k=3 must be between 1 and moe.num_experts=2"):
        MoEBlock(8, 16, MoEConfig(num_experts=2, top_k=3))
    with pytest.raises(ValueError, match="moe.where"):
        MoEConfig(where="middle").check()


def test_grouped_and_loop_dispatch_agree_with_idle_experts():
    """Grouped matmul vs per-expert loop on the same routing, incl. experts no token chose; with an
    expanded upstream gradient (`.sum()`), which the CPU grouped kernel's backward cannot take raw."""
    from src.models import dispatch

    if not dispatch._GROUPED:
        pytest.skip("this torch has no _grouped_mm")
    moe = random_moe()
    x = torch.randn(9, 16, requires_grad=True)
    idx = torch.tensor([[0, 2]] * 9)  # experts 1 and 3 idle
    w = torch.rand(9, 2)
    results = []
    for mode in ("grouped", "loop"):
        out = dispatch.expert_forward(x, w, idx, moe.experts, mode)
        grads = torch.autograd.grad(out.sum(), [x, moe.experts.w1, moe.experts.w2, moe.experts.b1])
        results.append((out, grads))
    (a, ga), (b, gb) = results
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    for p, q in zip(ga, gb):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4)
    assert float(ga[1][1].abs().sum()) == 0.0 and float(ga[1][0].abs().sum()) > 0  # idle expert: zero grad


def test_grouped_dispatch_needs_no_group_sizes_on_the_host(monkeypatch):
    """The grouped path never asks for the group sizes (a device->host sync on GPU)."""
    from src.models import dispatch

    if not dispatch._GROUPED:
        pytest.skip("this torch has no _grouped_mm")
    calls = []
    real = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda self: calls.append(1) or real(self))
    random_moe(dispatch="grouped")(torch.randn(3, 5, 16))
    assert calls == []
    random_moe(dispatch="loop")(torch.randn(3, 5, 16))
    assert len(calls) == 1  # the loop: one sync per layer call, not one per expert


def test_auto_dispatch_takes_the_loop_on_cpu_and_checks_its_name():
    from src.models import dispatch

    x, w = torch.randn(4, 16), torch.randn(2, 32, 16)
    assert dispatch.use_grouped_mm(x, w, "auto") is False
    assert dispatch.use_grouped_mm(x, w, "loop") is False
    assert dispatch.use_grouped_mm(x, w, "grouped") is dispatch._GROUPED
    with pytest.raises(ValueError, match="moe.dispatch"):
        MoEConfig(dispatch="einsum").check()


def test_loop_backward_skips_frozen_experts_and_keeps_the_input_gradient():
    """Stage-1 style: frozen expert weights get no gradient, the tokens' gradient is unchanged."""
    grads = {}
    for frozen in (False, True):
        moe = random_moe(dispatch="loop")
        moe.experts.w1.requires_grad_(not frozen)
        moe.experts.b2.requires_grad_(not frozen)
        x = torch.randn(2, 7, 16, requires_grad=True)
        moe(x)[0].square().sum().backward()
        grads[frozen] = x.grad
        assert (moe.experts.w1.grad is None) is frozen and (moe.experts.b2.grad is None) is frozen
        assert moe.experts.w2.grad is not None and moe.experts.w2.grad.abs().sum() > 0
    torch.testing.assert_close(grads[True], grads[False])
