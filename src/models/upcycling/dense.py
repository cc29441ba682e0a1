"""`upcycle=dense`: no MoE; the fully fine-tuned dense baseline."""

from src.models.upcycling.base import Strategy, register_strategy


@register_strategy("dense")
class Dense(Strategy):
    is_moe = False
