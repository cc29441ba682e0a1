"""`upcycle=dense`: no MoE; the fully fine-tuned dense baseline."""

from src.models.upcycling.base import DataFree, StrategyFacts, register_strategy
from src.models.upcycling.config import DenseConfig


@register_strategy
class Dense(DataFree[DenseConfig]):
    facts = StrategyFacts(is_moe=False)  # the upcycling installs nothing: init_experts is never called
