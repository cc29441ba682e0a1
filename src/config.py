"""Start-up validation of the composed config: unknown keys, missing values and impossible
combinations stop the run with one line naming the key.

A group with `_target_` is checked against the signature of what it builds; the other groups are
checked against the dataclass their code consumes (so the schema is the code, said once).
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from src.data.config import DataConfig, LoaderConfig
from src.data.languages import check_directions
from src.evaluation.config import EvalConfig
from src.models.config import ModelConfig, MoEConfig, ToyArch
from src.models.upcycling.config import CONFIGS, DENSE, UpcycleConfig, strategy_config
from src.training.config import PretrainRecipe, TrainerConfig, check_groups, check_trainer_config
from src.utils.errors import UserError, first_line
from src.utils.structured import to_dataclass


def short_dirname(name: str, limit: int = 80) -> str:
    """Job dir names from overrides, cut with a hash suffix so long override lists stay valid paths."""
    # "-" and "__" instead of "=" and ",", so a job dir can be passed back as an override value.
    name = name.replace("/", "-").replace("=", "-").replace(",", "__")
    if len(name) <= limit:
        return name
    return name[: limit - 9] + "~" + hashlib.sha1(name.encode()).hexdigest()[:8]


OmegaConf.register_new_resolver("short_dirname", short_dirname, replace=True)


# Step budgets shared by stages: ${frac:${trainer.total_steps},0.3333}, ${minus:a,b}.
OmegaConf.register_new_resolver("frac", lambda total, f: int(round(int(total) * float(f))), replace=True)
OmegaConf.register_new_resolver("minus", lambda a, b: int(a) - int(b), replace=True)


def launch_stamp(fmt: str = "%Y-%m-%d_%H-%M-%S") -> str:
    """`now`, except under torchrun/accelerate (WORLD_SIZE > 1): the launcher's start time, so every
    rank on a node resolves the same run dir. (Across nodes, pass hydra.run.dir explicitly.)"""
    import datetime
    import os

    t = None
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        try:
            ticks = int(open(f"/proc/{os.getppid()}/stat").read().rsplit(")", 1)[1].split()[19])
            boot = next(int(line.split()[1]) for line in open("/proc/stat") if line.startswith("btime"))
            t = boot + ticks / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError, StopIteration):
            t = None
    return (datetime.datetime.fromtimestamp(t) if t is not None else datetime.datetime.now()).strftime(fmt)


OmegaConf.register_new_resolver("launch_stamp", launch_stamp, replace=True)



def run_dir_of(cfg: DictConfig) -> Path:
    """The Hydra run dir of this job (outside Hydra: paths.output_dir)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return Path(HydraConfig.get().runtime.output_dir)
    except (ValueError, OmegaConfBaseException):  # not in a Hydra job (compose API: no runtime dir)
        return Path(cfg.paths.output_dir)


class ConfigError(UserError):
    """A config problem the user fixes on the command line or in a yaml."""


@contextlib.contextmanager
def config_checks() -> Iterator[None]:
    """A group's own check (a UserError) failing at start-up is a config problem: one line, no traceback."""
    try:
        yield
    except ConfigError:
        raise
    except UserError as e:
        raise ConfigError(str(e)) from None


@dataclass
class PathsConfig:
    """Where a run reads and writes; conf/paths/default.yaml sets each from Hydra's run (interpolations)."""

    root_dir: str = "."
    output_dir: str = "outputs"
    cache_dir: str = ".cache"  # toy corpus, toy model, clip durations (the yaml: $UPCYCLE_ST_CACHE or root_dir/.cache)


# Groups checked against the dataclass their code consumes.
SCHEMAS: dict[str, type] = {"model": ModelConfig, "pretrain": PretrainRecipe, "trainer": TrainerConfig,
                            "paths": PathsConfig, "moe": MoEConfig, "eval": EvalConfig}


def schema_defaults(schema: type, drop: tuple[str, ...] = (), **fixed: Any) -> dict[str, Any]:
    """A dataclass's defaults as plain values (nested dataclasses as dicts), less ``drop``, with ``fixed`` set."""
    node = OmegaConf.to_container(OmegaConf.structured(schema))
    return {**{k: v for k, v in node.items() if k not in drop}, **fixed}


def schema_nodes() -> dict[tuple[str, str], tuple[type, dict[str, Any]]]:
    """(group, name) -> (dataclass, the defaults stored under that name): each group's defaults said once, by its
    dataclass. conf/<group>/<base>.yaml starts its defaults list with `base_<group>_schema` and sets only what
    differs (and the interpolations, ${seed} and the like, a dataclass cannot hold); a strategy's yaml starts from
    `<strategy>_upcycle_schema`, its own dataclass's defaults; the toy model's yaml from `toy_model_schema` (the
    model's defaults with `ToyArch`'s). `trainer.stages` is left to the schedule yamls (the
    dataclass's one stage sets neither steps nor epochs)."""
    nodes = {(group, f"base_{group}_schema"): (schema, schema_defaults(schema, drop))
             for group, schema, drop in (("trainer", TrainerConfig, ("stages",)), ("pretrain", PretrainRecipe, ()),
                                         ("moe", MoEConfig, ()), ("eval", EvalConfig, ()), ("paths", PathsConfig, ()))}
    nodes["model", "base_model_schema"] = (ModelConfig, schema_defaults(ModelConfig))
    nodes["model", "toy_model_schema"] = (ModelConfig, schema_defaults(ModelConfig, toy=schema_defaults(ToyArch)))
    for name, schema in CONFIGS.items():
        nodes["upcycle", f"{name}_upcycle_schema"] = (schema, schema_defaults(schema, strategy=name))
    return nodes


def register_schemas() -> None:
    """schema_nodes() in Hydra's ConfigStore. Stored as plain values, not as typed nodes: types and unknown keys
    are checked once, by `validate`, with one line naming the key, and never by Hydra while it composes."""
    store = ConfigStore.instance()
    for (group, name), (_, node) in schema_nodes().items():
        store.store(group=group, name=name, node=node)


register_schemas()  # on import, as the resolvers above: every composition (entry points, tests) imports this module
# Groups checked against the signature of their `_target_` (plus nested schema nodes).
TARGET_GROUPS: dict[str, dict[str, type]] = {"data": {"loader": LoaderConfig}, "logger": {}}
# Top-level keys of config.yaml itself.
TOP_LEVEL = {"seed", "task_name", "progress", "debug", "out", "run_dir", "checkpoint", "rescore", "at_init", "rebuild"}


# Keys renamed since a release: a user's old name stops with one line naming the new one; a saved run's config
# (evaluate run_dir=..., at_init=true) is read with the old name moved (`upgraded`).
RENAMED = {"trainer.strategy": "trainer.parallel"}  # 'strategy' is the upcycling method's word


def _check_renamed(cfg: DictConfig) -> None:
    for old, new in RENAMED.items():
        if OmegaConf.select(cfg, old) is not None:
            raise ConfigError(f"{old}: renamed; use {new}")


def upgraded(saved: DictConfig) -> DictConfig:
    """A saved run's config with renamed keys under their new names (the run's values kept)."""
    for old, new in RENAMED.items():
        value = OmegaConf.select(saved, old)
        if value is not None:
            group, key = old.rsplit(".", 1)
            with open_dict(saved[group]):
                saved[group].pop(key)
                OmegaConf.update(saved, new, value, force_add=True)
    return saved


def typed(group: str, cfg: DictConfig):
    """The group as its dataclass (validated); raises ConfigError naming the bad key."""
    schema = SCHEMAS[group]
    try:
        node = OmegaConf.to_container(cfg[group], resolve=True)
        return to_dataclass(schema, node)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", "") or ""
        raise ConfigError(f"{group}.{key}: {first_line(e)}" if key else f"{group}: {first_line(e)}") from None


def _check_target(group: str, node: DictConfig, nested: dict[str, type]) -> None:
    target = node.get("_target_")
    if target is None:
        raise ConfigError(f"{group}._target_: missing; this group builds its component from _target_")
    try:
        fn = hydra.utils.get_object(target)
    except Exception as e:
        raise ConfigError(f"{group}._target_: cannot import '{target}' ({first_line(e)})") from None
    sig = inspect.signature(fn)
    params = sig.parameters
    takes_kwargs = any(p.kind == p.VAR_KEYWORD for p in params.values())
    accepted = set(params) - {"self"}
    if takes_kwargs and inspect.isclass(fn):
        for base in fn.__mro__[1:]:
            if "__init__" in vars(base):
                accepted |= set(inspect.signature(base.__init__).parameters) - {"self", "kwargs"}
    for key in node:
        if key.startswith("_") or key in nested:
            continue
        if key not in accepted:
            raise ConfigError(f"{group}.{key}: unknown option for {target}; known: {sorted(accepted - {'kwargs'})}")
    required = [n for n, p in params.items() if n != "self" and p.default is p.empty
                and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    for name in required:
        if name not in node or node[name] is None:
            raise ConfigError(f"{group}.{name}: required by {target}; set {group}.{name}=...")
    for key, schema in nested.items():
        if key in node:
            try:
                OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.to_container(node[key], resolve=True))
            except OmegaConfBaseException as e:
                raise ConfigError(f"{group}.{key}.{getattr(e, 'full_key', '')}: {first_line(e)}") from None


@dataclass
class RunSettings:
    """The composed config, typed once at start-up (`validate`, called by src.entry.cli.entry): the pipelines
    read these dataclasses and hand the parts down, never the raw composition."""

    model: ModelConfig
    pretrain: PretrainRecipe  # how the toy model is pretrained (read only when model.toy is used)
    trainer: TrainerConfig
    moe: MoEConfig
    eval: EvalConfig
    paths: PathsConfig
    data: DataConfig
    upcycle: UpcycleConfig  # the strategy's own dataclass (src/models/upcycling/config.py)
    logger: dict[str, Any]  # built from its `_target_` (src/training/loggers.py)
    output_dir: Path  # this job's directory (Hydra's run dir)
    resolved: dict[str, Any] = field(default_factory=dict)  # the whole composition, resolved (what the logger records)
    seed: int = 1
    progress: bool = True
    # Per-job keys of evaluate.yaml / upcycle.yaml / src.pretrain (config.yaml's TOP_LEVEL).
    run_dir: Path | None = None  # evaluate: the training run to evaluate
    checkpoint: Path | None = None  # evaluate: a model directory
    rescore: bool = False  # evaluate: rescore the saved hypotheses only
    at_init: bool = False  # evaluate: decode the run's init (rebuilt, checked against its report), not its checkpoint
    out: Path | None = None  # upcycle: where the MoE checkpoint goes
    rebuild: bool = True  # pretrain: rebuild the toy model even when it is cached


def data_config(node: DictConfig) -> DataConfig:
    """The `data` group (or a saved run's) as its dataclass; the loader settings validated."""
    try:
        with config_checks():
            data = DataConfig.from_node(OmegaConf.to_container(node, resolve=True))
            data.loader.check()
    except (OmegaConfBaseException, TypeError) as e:
        raise ConfigError(f"data.loader: {first_line(e)}") from None
    return data


def validate(cfg: DictConfig) -> RunSettings:
    """The run's settings, typed; raises ConfigError for the first problem found."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise ConfigError(f"{missing[0]}: missing required value; set it, e.g. {missing[0]}=...")
    known = TOP_LEVEL | set(SCHEMAS) | set(TARGET_GROUPS) | {"upcycle", "experiment"}
    for key in cfg:
        if key not in known:
            raise ConfigError(f"{key}: unknown top-level key; known: {sorted(known)}")
    _check_renamed(cfg)
    groups = {group: typed(group, cfg) for group in SCHEMAS}
    for group, nested in TARGET_GROUPS.items():
        _check_target(group, cfg[group], nested)
    optional_path = {key: Path(cfg[key]) if cfg.get(key) else None for key in ("run_dir", "checkpoint", "out")}
    run = RunSettings(upcycle=_check_upcycle(cfg, groups["moe"]), data=data_config(cfg.data),
                      logger=OmegaConf.to_container(cfg.logger, resolve=True), output_dir=run_dir_of(cfg),
                      resolved=OmegaConf.to_container(cfg, resolve=True), seed=int(cfg.seed),
                      progress=bool(cfg.get("progress", True)), rescore=bool(cfg.get("rescore", False)),
                      at_init=bool(cfg.get("at_init", False)),
                      rebuild=bool(cfg.get("rebuild", True)), **optional_path, **groups)
    check_combinations(run)
    return run


def _check_upcycle(cfg: DictConfig, moe: MoEConfig) -> UpcycleConfig:
    """`upcycle` is checked against the dataclass of the strategy it names (registry)."""
    try:
        with config_checks():
            ucfg = strategy_config(OmegaConf.create(OmegaConf.to_container(cfg.upcycle, resolve=True)))
            check_groups(ucfg.stage1_trainable, "upcycle.stage1_trainable")
            ucfg.check()
    except OmegaConfBaseException as e:
        raise ConfigError(f"upcycle.{getattr(e, 'full_key', '')}: {first_line(e)}") from None
    with config_checks():
        moe.check()
    return ucfg


def check_cached_encoder(run: RunSettings) -> None:
    """model.cached_encoder: the cached states must be what the encoder computes during training, so the encoder
    never trains, holds no MoE layer, and reads one fixed window (30 s padding)."""
    if not run.model.cached_encoder:
        return
    if run.model.encoder_cache_dtype not in ("float16", "float32"):
        raise ConfigError(f"model.encoder_cache_dtype: '{run.model.encoder_cache_dtype}' is not float16 or float32")
    if "encoder" not in run.trainer.frozen:
        raise ConfigError("model.cached_encoder=true needs trainer.frozen=[encoder] (the cache holds the "
                          "pretrained encoder's outputs)")
    if run.moe.where != "decoder" and run.upcycle.strategy != DENSE:
        raise ConfigError(f"model.cached_encoder=true needs moe.where=decoder (an MoE layer in the encoder would "
                          f"change its outputs), not {run.moe.where}")
    if not run.model.pad_to_30s and run.data.loader.window_frames is None:
        raise ConfigError("model.cached_encoder=true needs one fixed window per clip: model.pad_to_30s=true, or "
                          "data.loader.window_frames=N")


def check_window(run: RunSettings) -> None:
    """data.loader.window_frames: a window shorter than 30 s, with sliced positions, that every clip fits in."""
    window, max_dur = run.data.loader.window_frames, run.data.max_duration
    if window is None:
        return
    if run.model.pad_to_30s:
        raise ConfigError(f"data.loader.window_frames={window} needs model.pad_to_30s=false (30 s padding is "
                          "a window of its own)")
    if max_dur is None or max_dur * 100 > window:
        raise ConfigError(f"data.loader.window_frames={window} ({window / 100:g} s) needs data.max_duration <= "
                          f"{window / 100:g} (now {max_dur}): a longer clip would be cut, not skipped")


def check_combinations(run: RunSettings) -> None:
    model, data = run.model, run.data
    with config_checks():
        check_trainer_config(run.trainer)
        run.eval.check()
        run.pretrain.check()
    if model.name_or_path is None and model.toy is None:
        raise ConfigError("model.name_or_path: set a hub name or local path (or use model=whisper_toy)")
    if model.toy is not None and model.name_or_path is None and not data.is_toy:
        raise ConfigError("model: whisper_toy is pretrained on the toy corpus and needs data=toy; "
                          "for real CoVoST2 use e.g. model=whisper_small")
    if data.directions:
        with config_checks():
            check_directions(data.directions)
    check_cached_encoder(run)
    check_window(run)
    max_dur = data.max_duration
    if max_dur is not None and max_dur > 30:
        raise ConfigError(f"data.max_duration: {max_dur}s exceeds Whisper's 30 s encoder window")
    frames = 3000 if model.pad_to_30s else int((max_dur or 30) * 100) + 3
    if data.loader.max_batch_frames < frames:
        raise ConfigError(
            f"data.loader.max_batch_frames: {data.loader.max_batch_frames} cannot hold one "
            f"{'30 s (padded)' if model.pad_to_30s else f'{max_dur} s'} clip ({frames} frames); raise it"
        )
