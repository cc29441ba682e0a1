"""Named parameter groups that training stages select with `trainable: [...]`.

One registry: a group is a predicate over (parameter name, the modules on its path). The MoE groups
(router, experts, residual, shared_expert) select by module type, so no name pattern can catch a part
it does not mean (a router is never in `ffn`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from torch import nn

from src.models.moe import ExpertBank, MoEBlock, Router, SharedExpert
from src.training.config import PARAM_GROUP_NAMES, check_groups
from src.utils.registry import make_register

GroupFn = Callable[[str, tuple[nn.Module, ...]], bool]  # (parameter name, its modules from the root down)
PARAM_GROUPS: dict[str, GroupFn] = {}


register_group = make_register(PARAM_GROUPS)


def _under(*types: type) -> Callable[[str, tuple[nn.Module, ...]], bool]:
    return lambda n, owners: any(isinstance(m, types) for m in owners)


# transformers' Whisper modules, by their names in the state dict.
register_group("all")(lambda n, owners: True)
register_group("attention")(lambda n, owners: re.search(r"(self_attn|encoder_attn)(_layer_norm)?\.", n) is not None)
register_group("embeddings")(lambda n, owners: re.search(r"(embed_tokens|embed_positions|conv[12])\.", n) is not None)
register_group("layer_norm")(lambda n, owners: "layer_norm" in n)
register_group("encoder")(lambda n, owners: ".encoder." in f".{n}")
register_group("decoder")(lambda n, owners: ".decoder." in f".{n}")
# The decoder's cross-attention key and value projections: a function of the encoder's output alone, so with the
# encoder frozen and them too (trainer.frozen) no gradient flows into the 1500 encoder positions at all.
register_group("cross_kv")(lambda n, owners: re.search(r"encoder_attn\.(k_proj|v_proj)\.", n) is not None)
# The FFN slot: a dense layer's fc1/fc2, an MoE layer's block without its router; and the norm before it.
register_group("ffn")(lambda n, owners: re.search(r"\.(fc1|fc2|final_layer_norm)\.", n) is not None
                      or (_under(MoEBlock)(n, owners) and not _under(Router)(n, owners)))
# MoE parts (src/models/moe.py), by module type: routers, routed experts, shared expert.
register_group("router")(_under(Router))
register_group("experts")(_under(ExpertBank))
# The routed experts' weight matrices (not biases): SPRI's stage 1 moves them in the residual spectrum only
# (src/models/upcycling/spri.py ResidualSpectrum), any other strategy naming it trains them unrestricted.
register_group("residual")(lambda n, owners: isinstance(owners[-1], ExpertBank) and n.endswith((".w1", ".w2")))
register_group("shared_expert")(_under(SharedExpert))
assert tuple(PARAM_GROUPS) == PARAM_GROUP_NAMES, "list a new group in src/training/config.py PARAM_GROUP_NAMES"


def owners_of(model: nn.Module) -> dict[str, tuple[nn.Module, ...]]:
    """{parameter name: the modules on its path, root first}."""
    modules = dict(model.named_modules())
    out = {}
    for prefix, module in modules.items():
        parts = prefix.split(".") if prefix else []
        chain = tuple(modules[".".join(parts[:i])] for i in range(len(parts) + 1))
        for pname, _ in module.named_parameters(recurse=False):
            out[f"{prefix}.{pname}" if prefix else pname] = chain
    return out


# Never trained, whatever a stage names: Whisper's encoder positions are a fixed sinusoid (transformers keeps
# them frozen), so every strategy leaves them alone.
FIXED = re.compile(r"(^|\.)encoder\.embed_positions\.")


def set_trainable(model: nn.Module, groups: Iterable[str], frozen: Iterable[str] = ()) -> dict[str, int]:
    """Freeze everything, then unfreeze the union of the groups (FIXED parameters and the ``frozen`` groups,
    trainer.frozen, excepted); returns parameter counts by group."""
    groups, frozen = list(groups), list(frozen)
    check_groups(groups)
    check_groups(frozen, "trainer.frozen")
    counts = dict.fromkeys(groups, 0)
    owners = owners_of(model)
    for name, p in model.named_parameters():
        never = FIXED.search(name) or any(PARAM_GROUPS[g](name, owners[name]) for g in frozen)
        hit = [g for g in groups if PARAM_GROUPS[g](name, owners[name])] if not never else []
        p.requires_grad_(bool(hit))
        for g in hit:
            counts[g] += p.numel()
    counts["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
