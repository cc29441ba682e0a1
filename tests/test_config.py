"""Every config group composes; validation names the offending key in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONF_DIR
from helpers import make_cfg

from src.config import ConfigError, typed, validate


@pytest.mark.parametrize("model", ["whisper_toy", "whisper_tiny", "whisper_small", "whisper_large_v3"])
@pytest.mark.parametrize("logger", ["console", "wandb"])
def test_groups_compose_and_validate(model, logger):
    data = "toy" if model == "whisper_toy" else "covost2"
    cfg = make_cfg([f"model={model}", f"data={data}", f"logger={logger}", "data.root=/data/cv4"]
                   if data == "covost2" else [f"model={model}", f"logger={logger}"])
    validate(cfg)
    assert typed("model", cfg).pad_to_30s is False  # short-clip encoder by default (README: the trade-off)


def test_hf_data_composes():
    validate(make_cfg(["model=whisper_small", "data=covost2_hf", "data.directions=[de,ja]"]))


@pytest.mark.parametrize("overrides, message", [
    (["model=whisper_small", "data=covost2"], r"data.root: missing required value"),
    (["+data.rooot=/x"], r"data.rooot: unknown option for src.data.toy.source.ToySource"),
    (["+trainer.lrr=1"], r"trainer.lrr"),
    (["data.directions=[de,xx]"], r"unknown CoVoST2 direction 'xx'"),
    (["trainer.stages.0.schedule=weird"], r"trainer.stages\[0\].schedule"),
    (["trainer.stages.0.trainable=[router_typo]"], r"unknown parameter group\(s\) \['router_typo'\]"),
    (["data.loader.max_batch_frames=100"], r"data.loader.max_batch_frames: 100 cannot hold"),
    (["model=whisper_toy", "data=covost2", "data.root=/x"],
     r"model: whisper_toy is pretrained on the toy corpus and needs data=toy"),
    (["data.max_duration=45"], r"data.max_duration: 45"),
    (["+model.toy.d_modell=3"], r"model.toy.d_modell"),
    (["eval.task=summarise"], r"eval.task must be one of \['transcribe', 'translate'\]"),
])
def test_validation_names_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        validate(make_cfg(overrides))
    assert "\n" not in str(err.value)


def test_entry_point_prints_one_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "src.train", "model=whisper_small", "data=covost2", f"hydra.run.dir={tmp_path}"],
        cwd=Path(CONF_DIR).parent, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == ("config error: data.root: missing required value; "
                                                    "set it, e.g. data.root=...")
    assert "Traceback" not in proc.stderr


def test_each_method_trains_on_its_own_schedule_with_the_same_step_budget():
    dense = make_cfg(["upcycle=dense"])
    spri = make_cfg(["upcycle=spri"])
    assert sum(s.steps for s in dense.trainer.stages) == sum(s.steps for s in spri.trainer.stages)
    assert list(spri.trainer.stages[0].trainable) == ["residual", "router"]
    for baseline in ("vanilla", "random", "drop", "cluster"):  # their papers: everything from step one
        assert [list(s.trainable) for s in make_cfg([f"upcycle={baseline}"]).trainer.stages] == [["all"]]
    ablation = make_cfg(["upcycle=vanilla", "trainer=two_stage"]).trainer.stages
    assert [list(s.trainable) for s in ablation] == [["router", "experts"], ["all"]]
    assert [s.name for s in make_cfg(["upcycle=spri", "trainer=one_stage"]).trainer.stages] == ["finetune"]


STRATEGY_NAMES = sorted(p.stem for p in (Path(CONF_DIR) / "upcycle").glob("*.yaml") if p.stem != "base")


def test_covost2_preset_gives_every_strategy_the_same_budget_and_frozen_set():
    """experiment=covost2: equal steps, equal peak lr / warmup / schedule, the last stage trains everything,
    and the dense baseline trains every parameter but Whisper's fixed encoder positions."""
    from helpers import tiny_whisper

    from src.training.param_groups import set_trainable

    budgets = set()
    for strategy in STRATEGY_NAMES:
        cfg = make_cfg(["experiment=covost2", f"upcycle={strategy}", "data.root=/data/cv4"])
        validate(cfg)
        stages = typed("trainer", cfg).stages
        budgets.add((sum(s.steps for s in stages), tuple({(s.lr, s.warmup_steps, s.schedule) for s in stages})))
        assert list(stages[-1].trainable) == ["all"], strategy
        assert cfg.model.name_or_path == "openai/whisper-small"
    assert len(budgets) == 1 and next(iter(budgets))[0] == 30000
    model = tiny_whisper()
    counts = set_trainable(model, ["all"])
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen == ["model.encoder.embed_positions.weight"]
    assert counts["trainable"] == counts["total"] - model.model.encoder.embed_positions.weight.numel()


@pytest.mark.parametrize("overrides, message", [
    (["upcycle=spri", "+upcycle.rnak=3"], r"upcycle.rnak"),
    (["upcycle=spri", "upcycle.stage1_trainable=[residuals]"], r"upcycle.stage1_trainable: unknown parameter group"),
    (["upcycle=vanilla", "moe.top_k=9"], r"moe.top_k=9 must be between 1 and moe.num_experts=8"),
    (["upcycle=vanilla", "+moe.experts=4"], r"moe.experts"),
    (["upcycle=dense", "upcycle.strategy=null"], r"upcycle.strategy: not set; choose upcycle=<one of"),
])
def test_moe_and_upcycle_validation(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(make_cfg(overrides))


EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_preset_composes_and_validates(experiment):
    extra = ["data.root=/data/cv4"] if experiment.endswith("covost2") else []
    cfg = make_cfg([f"experiment={experiment}", *extra])
    validate(cfg)
    moe = typed("moe", cfg)
    if experiment.endswith("covost2"):
        assert cfg.model.name_or_path == "openai/whisper-small" and cfg.task_name == experiment
        expected = {"covost2": "dense", "cluster_covost2": "cluster"}.get(experiment, "spri")
        assert cfg.upcycle.strategy == expected
        assert (moe.dpsl.coef > 0) == experiment.startswith("dpsl")
        assert (moe.sd_moe.rank > 0) == experiment.startswith("sdmoe")
        assert (moe.self_distill.coef > 0) == experiment.startswith("cluster")


@pytest.mark.parametrize("overrides, message", [
    (["upcycle=cluster", "upcycle.svd_mode=full"], r"upcycle.svd_mode"),
    (["upcycle=vanilla", "moe.self_distill.loss=l1"], r"moe.self_distill.loss: 'l1'"),
    (["upcycle=vanilla", "moe.dpsl.coef=1", "moe.dpsl.alpha=[1,2]"], r"one per expert: 8"),
    (["upcycle=vanilla", "moe.dpsl.coef=1", "moe.dpsl.language_prior=always"], r"moe.dpsl.language_prior"),
    (["upcycle=vanilla", "moe.sd_moe.period=0"], r"moe.sd_moe"),
    (["trainer.parallel=zero3"], r"trainer.parallel: 'zero3'"),
    (["+trainer.strategy=fsdp"], r"^trainer.strategy: renamed; use trainer.parallel"),
    (["upcycle=vanilla", "moe.dispatch=einsum"], r"moe.dispatch: 'einsum'"),
])
def test_method_options_are_validated(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(make_cfg(overrides))


def test_speed_and_scale_options_compose():
    cfg = make_cfg(["upcycle=spri", "trainer.parallel=fsdp", "trainer.gradient_checkpointing=true",
                    "trainer.compile=true", "trainer.compile_backend=aot_eager", "trainer.precision=bf16",
                    "moe.dispatch=grouped"])
    validate(cfg)
    t = typed("trainer", cfg)
    assert (t.parallel, t.gradient_checkpointing, t.compile, t.compile_backend, t.precision) == (
        "fsdp", True, True, "aot_eager", "bf16")
    assert typed("moe", cfg).dispatch == "grouped"


@pytest.mark.parametrize("override, key, allowed", [
    ("trainer.lr=0", "trainer.lr", "> 0"),
    ("trainer.lr=-1", "trainer.lr", "> 0"),
    ("trainer.total_steps=0", "trainer.total_steps", ">= 1"),
    ("trainer.total_steps=-5", "trainer.total_steps", ">= 1"),
    ("trainer.stages.0.steps=0", "trainer.stages[0].steps", ">= 1"),
    ("trainer.clip_norm=-1", "trainer.clip_norm", "> 0 (or null)"),
    ("trainer.weight_decay=-1", "trainer.weight_decay", ">= 0"),
    ("trainer.save_every=-1", "trainer.save_every", ">= 1 (or null)"),
    ("trainer.log_every=0", "trainer.log_every", ">= 1"),
    ("trainer.beta2=1.0", "trainer.beta2", "< 1"),
    ("trainer.warmup_steps=-3", "trainer.warmup_steps", ">= 0"),
    ("eval.beam=0", "eval.beam", ">= 1"),
    ("eval.max_new_tokens=0", "eval.max_new_tokens", ">= 1"),
    ("data.loader.max_batch_size=0", "data.loader.max_batch_size", ">= 1"),
    ("data.loader.num_workers=-1", "data.loader.num_workers", ">= 0"),
    ("moe.num_experts=0", "moe.num_experts", ">= 1"),
    ("moe.z_coef=-0.1", "moe.z_coef", ">= 0"),
])
def test_numeric_knobs_out_of_range_name_the_key_and_the_range(override, key, allowed):
    """Accepted silently before (nothing trained, uphill training) or a bare ZeroDivisionError later."""
    extra = ["upcycle=vanilla"] if override.startswith("moe.") else []
    with pytest.raises(ConfigError) as err:
        validate(make_cfg([override, *extra]))
    message = str(err.value)
    assert message.startswith(f"{key}=") and allowed in message and "\n" not in message, message


@pytest.mark.parametrize("data, model", [("toy", None), ("covost2", "openai/whisper-small"),
                                         ("covost2_hf", "openai/whisper-small")])
def test_the_default_model_follows_the_data(data, model):
    """`python -m src.train upcycle=spri data=covost2 data.root=...` needs no model choice (model=auto_<data>)."""
    cfg = make_cfg([f"data={data}", "data.root=/data/cv4"] if data == "covost2" else [f"data={data}"])
    validate(cfg)
    assert cfg.model.name_or_path == model and (cfg.model.get("toy") is not None) == (data == "toy")
    assert make_cfg(["model=whisper_tiny", f"data={data}", "data.root=/x"] if data == "covost2" else
                    ["model=whisper_tiny", f"data={data}"]).model.name_or_path == "openai/whisper-tiny"


@pytest.mark.parametrize("fraction, stage1", [(None, 267), (0.1, 80), (0.5, 400)])
def test_two_stage_splits_the_budget_by_stage1_fraction(fraction, stage1):
    extra = [] if fraction is None else [f"trainer.stage1_fraction={fraction}"]
    run = validate(make_cfg(["experiment=toy_demo", "upcycle=spri", *extra, "trainer.stage1_lr=2e-4"]))
    steps = [s.steps for s in run.trainer.stages]
    assert steps == [stage1, 800 - stage1] and sum(steps) == run.trainer.total_steps
    assert [s.lr for s in run.trainer.stages] == [2e-4, 2e-3]  # stage1_lr is stage 1's alone


@pytest.mark.parametrize("overrides, message", [
    (["upcycle=spri", "trainer.stage1_fraction=1.5"], r"trainer.stage1_fraction=1.5: must be > 0 and < 1"),
    (["upcycle=spri", "trainer.stage1_fraction=0"], r"trainer.stage1_fraction=0(\.0)?: must be > 0 and < 1"),
    (["upcycle=spri", "trainer=one_stage", "trainer.stage1_fraction=0.1"],
     r"trainer.stage1_fraction=0.1 applies to a two-stage schedule \(trainer=two_stage\)"),
    (["upcycle=vanilla", "trainer.stage1_lr=1e-4"], r"trainer.stage1_lr=0.0001 applies to a two-stage schedule"),
    (["upcycle=spri", "upcycle.residual_scale=0"], r"upcycle.residual_scale must be > 0"),
    (["upcycle=spri", "upcycle.auto_measure=ratio"], r"upcycle.auto_measure must be one of"),
    (["upcycle=spri", "upcycle.calibration_task=asr"], r"upcycle.calibration_task must be one of"),
])
def test_schedule_and_budget_knobs_are_refused_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message) as err:
        validate(make_cfg(["experiment=toy_demo", *overrides]))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("target", ["src.models.moe.MoEConfig.check", "src.config.check_trainer_config",
                                    "src.data.loading.LoaderConfig.check", "src.evaluation.run.EvalConfig.check"])
def test_a_bug_raised_while_checking_keeps_its_traceback(monkeypatch, target):
    """Only UserError becomes a one-line ConfigError: a plain ValueError is a bug and propagates as itself."""

    def bug(*_a, **_k):
        raise ValueError("internal bug")

    monkeypatch.setattr(target, bug)
    with pytest.raises(ValueError, match="internal bug") as info:
        validate(make_cfg(["upcycle=spri"]))
    assert not isinstance(info.value, ConfigError)


def test_validating_a_config_imports_no_torch():
    """Each group's dataclass lives in a torch-free module: composing and typing a run needs no torch (nor the
    strategies, which import it)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from hydra import compose, initialize_config_dir\n"
        "from hydra.core.hydra_config import HydraConfig\n"
        "from omegaconf import open_dict\n"
        "from src.config import validate\n"
        f"with initialize_config_dir(config_dir={CONF_DIR!r}, version_base='1.3'):\n"
        "    for o in (['upcycle=spri'], ['upcycle=cluster', 'model=whisper_small', 'data=covost2', 'data.root=/x']):\n"
        "        cfg = compose('config', overrides=o, return_hydra_config=True)\n"
        "        HydraConfig().set_config(cfg)\n"
        "        with open_dict(cfg):\n"
        "            del cfg['hydra']\n"
        "            cfg.paths.output_dir = '/tmp/upcycle-st-test'\n"
        "        run = validate(cfg)\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'src.models.upcycling.spri') if m in sys.modules)\n"
        "print(type(run.upcycle).__name__, run.data.target, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(CONF_DIR).parent,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["ClusterConfig", "src.data.covost2.CoVoST2Source", "[]"]


def test_run_settings_are_typed_throughout():
    """No field of RunSettings is the raw composition (DictConfig) or untyped: the pipelines read dataclasses."""
    import typing

    from src.config import RunSettings

    hints = typing.get_type_hints(RunSettings)
    assert not [name for name, hint in hints.items() if hint is typing.Any or "DictConfig" in str(hint)]
    run = validate(make_cfg(["upcycle=spri", "data.loader.max_batch_size=7", "pretrain.steps=12"]))
    assert type(run.upcycle).__name__ == "SPRIConfig" and run.upcycle.energy == "auto"
    assert run.data.loader.max_batch_size == 7 and run.data.is_toy and run.pretrain.steps == 12
    assert run.output_dir == Path("/tmp/upcycle-st-test") and run.resolved["upcycle"]["strategy"] == "spri"


def test_strategy_and_config_registries_agree():
    from src.models.upcycling import STRATEGIES
    from src.models.upcycling.config import CONFIGS

    assert sorted(STRATEGIES) == sorted(CONFIGS)
    assert all(STRATEGIES[name].config is CONFIGS[name] for name in STRATEGIES)


def test_a_saved_run_with_a_renamed_key_is_read_under_the_new_name():
    """An old run's config.yaml (trainer.strategy) still validates for `src.evaluate run_dir=... at_init=true`;
    a user's override of the old name stops (test_method_options_are_validated)."""
    from omegaconf import OmegaConf

    from src.config import upgraded

    saved = make_cfg(["trainer.parallel=ddp"])
    OmegaConf.set_struct(saved, False)
    saved.trainer.pop("parallel")
    saved.trainer.strategy = "fsdp"
    with pytest.raises(ConfigError, match="trainer.strategy: renamed"):
        validate(saved)
    assert validate(upgraded(saved)).trainer.parallel == "fsdp"
