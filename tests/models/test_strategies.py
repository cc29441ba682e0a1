"""The strategy registry's rules: a strategy's name is declared once (on its config dataclass), its config type
is its `Strategy[Cfg, State]` parameter, and the builders' facts are data on the class."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from src.models.upcycling import STRATEGIES
from src.models.upcycling.base import DataFree, Strategy, StrategyFacts, register_strategy
from src.models.upcycling.config import CONFIGS, DropConfig, UpcycleConfig, register_config


def test_every_strategy_is_registered_under_its_configs_name():
    assert list(STRATEGIES) and sorted(STRATEGIES) == sorted(CONFIGS)
    for key, strategy in STRATEGIES.items():
        assert strategy.name == key == strategy.config.name and CONFIGS[key] is strategy.config, key


def test_registering_a_strategy_whose_config_names_another_strategy_fails():
    class SecondDrop(DataFree[DropConfig]):
        pass

    before = dict(STRATEGIES)
    with pytest.raises(ValueError, match="strategy 'drop' .* is already Drop"):
        register_strategy(SecondDrop)
    assert STRATEGIES == before


def test_a_strategy_needs_a_registered_config():
    @dataclass
    class Unregistered(UpcycleConfig):
        name: ClassVar[str] = "unregistered"

    class Loose(DataFree[Unregistered]):
        pass

    class Bare(Strategy):
        pass

    for cls in (Loose, Bare):
        with pytest.raises(TypeError, match="with a config registered"):
            register_strategy(cls)
    assert "unregistered" not in STRATEGIES


def test_a_config_must_name_its_own_strategy_and_a_new_one():
    @dataclass
    class Inherits(DropConfig):  # `name` inherited from DropConfig: not its own
        pass

    @dataclass
    class Taken(UpcycleConfig):
        name: ClassVar[str] = "spri"

    before = dict(CONFIGS)
    with pytest.raises(TypeError, match="Inherits names no strategy"):
        register_config(Inherits)
    with pytest.raises(ValueError, match="strategy 'spri' is already configured by SPRIConfig"):
        register_config(Taken)
    assert CONFIGS == before


def test_the_config_type_is_the_strategy_parameter():
    assert STRATEGIES["drop"].config is DropConfig
    assert type(STRATEGIES["spri"]).config is CONFIGS["spri"]

    class Sub(type(STRATEGIES["spri"])):  # an unparametrised subclass keeps its parent's config
        pass

    assert Sub.config is CONFIGS["spri"]


def test_the_builders_facts_are_data_on_each_strategy():
    facts = {name: s.facts for name, s in STRATEGIES.items()}
    assert all(isinstance(f, StrategyFacts) for f in facts.values())
    assert [n for n, f in facts.items() if not f.is_moe] == ["dense"]
    assert [n for n, f in facts.items() if f.needs_calibration] == ["cluster"]
    with pytest.raises(AttributeError):
        facts["spri"].is_moe = False  # frozen: a fact is not switched at run time


def test_a_strategy_dataclass_sets_its_own_strategy_and_refuses_another():
    """The strategy field follows the dataclass's name: SPRIConfig() is SPRI, never the base class's dense."""
    from src.models.upcycling.config import CONFIGS, DENSE, UpcycleConfig
    from src.utils.errors import UserError

    assert CONFIGS["spri"]().strategy == "spri" and CONFIGS["cluster"](energy=0.9).strategy == "cluster"
    assert UpcycleConfig().strategy == DENSE
    with pytest.raises(UserError, match="'dense', but SPRIConfig configures 'spri'"):
        CONFIGS["spri"](strategy="dense")
