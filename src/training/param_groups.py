"""Named parameter groups that training stages select with `trainable: [...]`.

One registry: a group is a predicate over (parameter name, module path). MoE groups (router,
residual, experts, shared_expert) select the MoE layers' parameters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from torch import nn

from src.utils.errors import UserError
from src.utils.registry import make_register

GroupFn = Callable[[str], bool]
PARAM_GROUPS: dict[str, GroupFn] = {}


register_group = make_register(PARAM_GROUPS)


register_group("all")(lambda n: True)
register_group("attention")(lambda n: re.search(r"(self_attn|encoder_attn)(_layer_norm)?\.", n) is not None)
register_group("embeddings")(lambda n: re.search(r"(embed_tokens|embed_positions|conv[12])\.", n) is not None)
register_group("ffn")(lambda n: re.search(r"\.(fc1|fc2|final_layer_norm)\.", n) is not None)
register_group("layer_norm")(lambda n: "layer_norm" in n)
register_group("encoder")(lambda n: ".encoder." in f".{n}")
register_group("decoder")(lambda n: ".decoder." in f".{n}")
# MoE parts (src/models/moe.py): routers, all routed-expert tensors, SPRI's two halves, shared expert.
register_group("router")(lambda n: ".router." in n)
register_group("experts")(lambda n: ".experts." in n)
# The routed experts' weight matrices (not biases): SPRI's stage 1 moves them in the residual spectrum only
# (src/models/upcycling/spri.py ResidualSpectrum), any other strategy naming it trains them unrestricted.
register_group("residual")(lambda n: re.search(r"\.experts\.w[12]$", n) is not None)
register_group("shared_expert")(lambda n: ".shared_expert." in n)


def check_groups(groups: Iterable[str], where: str = "trainable") -> None:
    unknown = [g for g in groups if g not in PARAM_GROUPS]
    if unknown:
        raise UserError(f"{where}: unknown parameter group(s) {unknown}; known: {sorted(PARAM_GROUPS)}")


# Never trained, whatever a stage names: Whisper's encoder positions are a fixed sinusoid (transformers keeps
# them frozen), so every strategy leaves them alone.
FIXED = re.compile(r"(^|\.)encoder\.embed_positions\.")


def set_trainable(model: nn.Module, groups: Iterable[str]) -> dict[str, int]:
    """Freeze everything, then unfreeze the union of the groups (FIXED parameters excepted); returns
    parameter counts by group."""
    groups = list(groups)
    check_groups(groups)
    counts = dict.fromkeys(groups, 0)
    for name, p in model.named_parameters():
        hit = [g for g in groups if PARAM_GROUPS[g](name)] if not FIXED.search(name) else []
        p.requires_grad_(bool(hit))
        for g in hit:
            counts[g] += p.numel()
    counts["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    counts["total"] = sum(p.numel() for p in model.parameters())
    return counts
