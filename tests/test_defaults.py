"""One source of defaults: each group's dataclass is its schema, and a group's yaml holds only what differs from
it (and from the yamls it extends), the interpolations a dataclass cannot hold, and its defaults list."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from src.config import schema_nodes as _schema_nodes

CONF = Path(__file__).resolve().parents[1] / "conf"
SCHEMA_NODES = _schema_nodes()  # built once (each call converts every dataclass)
GROUPS = sorted({group for group, _ in SCHEMA_NODES})
YAMLS = sorted(str(p.relative_to(CONF)) for g in GROUPS for p in (CONF / g).glob("*.yaml"))


def _leaves(node, prefix: str = ""):
    if isinstance(node, dict) and (node or not prefix):
        for key, value in node.items():
            yield from _leaves(value, f"{prefix}{key}.")
    else:
        yield prefix[:-1], node


def _lookup(node, path: str):
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return KeyError
        node = node[key]
    return node


def _inherited(conf: Path, group: str, name: str) -> tuple[dict, type | None]:
    """What the yaml `group/name` extends: the merged values of its defaults list in its own group (schema nodes
    and yamls), and the dataclass it reaches; entries of other groups (`override /moe@...`) aside."""
    yaml = OmegaConf.to_container(OmegaConf.load(conf / group / f"{name}.yaml"))
    merged, schema = {}, None
    for entry in yaml.get("defaults", []):
        if not isinstance(entry, str) or entry == "_self_":
            continue
        if (group, entry) in SCHEMA_NODES:
            schema, node = SCHEMA_NODES[group, entry]
        else:
            node, schema = _own_and_inherited(conf, group, entry)
        merged = OmegaConf.to_container(OmegaConf.merge(merged, node))
    return merged, schema


def _own_and_inherited(conf: Path, group: str, name: str) -> tuple[dict, type | None]:
    parent, schema = _inherited(conf, group, name)
    own = OmegaConf.to_container(OmegaConf.load(conf / group / f"{name}.yaml"))
    own.pop("defaults", None)
    return OmegaConf.to_container(OmegaConf.merge(parent, own)), schema


def problems(conf: Path, rel: str) -> list[str]:
    """Each key of the yaml `rel` (group/name.yaml) that repeats what it extends or that its dataclass lacks; and
    a yaml that extends no dataclass."""
    group, name = rel[: -len(".yaml")].split("/")
    parent, schema = _inherited(conf, group, name)
    if schema is None:
        return [f"{rel}: extends no schema; start its defaults list with base_{group}_schema (src/config.py)"]
    own = OmegaConf.to_container(OmegaConf.load(conf / rel))
    own.pop("defaults", None)
    known = {f.name for f in fields(schema)}
    out = []
    for path, value in _leaves(own):
        if path.split(".")[0] not in known:
            out.append(f"{rel}: {path}: not a field of {schema.__name__}")
        elif isinstance(value, str) and "${" in value:
            continue  # an interpolation: the yaml's to hold
        elif _lookup(parent, path) is not KeyError and _lookup(parent, path) == value:
            out.append(f"{rel}: {path}: {value!r} repeats the default it extends; drop it")
    return out


@pytest.mark.parametrize("rel", YAMLS)
def test_a_group_yaml_sets_only_what_differs_from_its_dataclass(rel):
    assert problems(CONF, rel) == []


def test_every_schema_group_is_checked():
    assert {"model", "trainer", "pretrain", "moe", "eval", "paths", "upcycle"} <= set(GROUPS)
    assert {g for g in GROUPS for rel in YAMLS if rel.startswith(f"{g}/")} == set(GROUPS)  # each has yamls checked


@pytest.mark.parametrize("body, expected", [
    ("lr: 1.0e-3\n", "trainer/bad.yaml: lr: 0.001 repeats the default it extends; drop it"),  # TrainerConfig's
    ("total_steps: 600\n", "trainer/bad.yaml: total_steps: 600 repeats the default it extends; drop it"),
    ("stage1_lr: 2.0e-4\nlr_typo: 1\n", "trainer/bad.yaml: lr_typo: not a field of TrainerConfig"),
    ("progress: ${progress}\nlr: 2.0e-3\n", None),  # an interpolation and a value of its own: fine
])
def test_the_check_fails_on_a_repeated_default_or_an_unknown_key(tmp_path, body, expected):
    conf = tmp_path / "conf"
    (conf / "trainer").mkdir(parents=True)
    (conf / "trainer" / "base.yaml").write_text((CONF / "trainer" / "base.yaml").read_text())
    (conf / "trainer" / "bad.yaml").write_text("defaults:\n  - base\n  - _self_\n\n" + body)
    assert problems(conf, "trainer/bad.yaml") == ([expected] if expected else [])
    (conf / "trainer" / "orphan.yaml").write_text("lr: 2.0e-3\n")
    assert problems(conf, "trainer/orphan.yaml") == [
        "trainer/orphan.yaml: extends no schema; start its defaults list with base_trainer_schema (src/config.py)"]


def test_a_repeat_of_a_parent_yaml_is_caught_too(tmp_path):
    """moe=x extends moe=dpsl, which extends moe=default: a value dpsl.yaml itself sets is a repeat as well."""
    conf = tmp_path / "conf"
    (conf / "moe").mkdir(parents=True)
    for name in ("default", "dpsl"):
        (conf / "moe" / f"{name}.yaml").write_text((CONF / "moe" / f"{name}.yaml").read_text())
    (conf / "moe" / "x.yaml").write_text("defaults:\n  - dpsl\n  - _self_\n\ndpsl:\n  coef: 1.0e-2\n  alpha: 2.0\n")
    assert problems(conf, "moe/x.yaml") == ["moe/x.yaml: dpsl.coef: 0.01 repeats the default it extends; drop it"]
