"""`upcycle=vanilla` (Sparse Upcycling, Komatsuzaki et al. 2023): every expert an exact copy of the
dense FFN, router random; with renormalised top-k the MoE computes the dense FFN at init."""

from src.models.upcycling.base import Strategy, copy_dense, init_router, register_strategy


@register_strategy("vanilla")
class Vanilla(Strategy):
    def init_experts(self, moe, fc1, fc2, cfg, gen, state=None) -> dict:
        copy_dense(moe, fc1, fc2)
        init_router(moe, cfg.router_std, gen)
        return {}
