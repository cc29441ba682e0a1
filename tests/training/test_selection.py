"""Which weights a run ends with (trainer.select / average_last), early stopping (trainer.patience), and the
best-so-far surviving a resume. Dev losses are scripted (a function of the global step), so the tests say
exactly which step must win."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
import torch
from helpers import Crashing, batches, tiny_whisper
from safetensors.torch import load_file, save_file

from src.models.backbone import set_pad_to_30s
from src.training.checkpoint import read_state
from src.training.config import StageConfig, TrainerConfig, check_trainer_config
from src.training.selection import average_state_dicts, best_dirs
from src.training.trainer import Trainer
from src.utils.errors import UserError


def model():
    m = tiny_whisper()
    m.config.dropout = 0.0
    set_pad_to_30s(m, False)
    return m


def scripted(trainer: Trainer, losses: dict[int, float]) -> Trainer:
    """The trainer's dev loss becomes losses[global step] (a missing step fails the test)."""
    trainer.dev_loss = lambda: losses[trainer.global_step]
    return trainer


def weights_equal(m, ckpt_dir) -> bool:
    saved = load_file(str(ckpt_dir / "model.safetensors"))
    return all(torch.equal(saved[k], v) for k, v in m.state_dict().items() if k in saved)


def test_best_dev_loss_selects_the_best_step_over_all_stages_and_loads_it(tmp_path):
    stages = [StageConfig(name="a", steps=4, lr=1e-2), StageConfig(name="b", steps=4, lr=1e-2)]
    cfg = TrainerConfig(stages=stages, progress=False, eval_every=2, select="best_dev_loss")
    m = model()
    t = scripted(Trainer(m, None, cfg, tmp_path, batches(4), batches(1)), {2: 3.0, 4: 2.0, 6: 2.5, 8: 2.6})
    hist = t.fit()
    ckpts = tmp_path / "checkpoints"
    assert [h["dev_loss"] for h in hist] == [2.0, 2.6]  # the history stays one dict per stage
    sel = t.selection
    assert sel["rule"] == "best_dev_loss" and sel["label"] == "best dev loss (every 2 steps)"
    assert (sel["global_step"], sel["dev_loss"], sel["stopped_early_at"]) == (4, 2.0, None)
    assert sel["checkpoint"] == str(ckpts / "best-00000004") and best_dirs(ckpts) == [ckpts / "best-00000004"]
    assert read_state(ckpts / "best-00000004") == {"global_step": 4, "dev_loss": 2.0, "stage": "a"}
    assert weights_equal(m, ckpts / "best-00000004") and not weights_equal(m, ckpts / "b")
    assert read_state(ckpts / "b")["best"] == {"global_step": 4, "dev_loss": 2.0}


def test_last_is_the_default_and_names_the_last_stage(tmp_path):
    m = model()
    t = Trainer(m, None, TrainerConfig(stages=[StageConfig(name="s", steps=2)], progress=False), tmp_path, batches(2))
    t.fit()
    assert t.selection == {"rule": "last", "label": "last", "global_step": 2,
                           "checkpoint": str(tmp_path / "checkpoints" / "s"), "stopped_early_at": None}
    assert not best_dirs(tmp_path / "checkpoints")


def test_averaging_is_the_element_wise_mean(tmp_path):
    g = torch.Generator().manual_seed(0)
    dicts = [{"w": torch.randn(3, 4, generator=g), "b": torch.randn(4, generator=g).to(torch.bfloat16),
              "n": torch.tensor([i, 7])} for i in range(3)]
    paths = []
    for i, sd in enumerate(dicts):
        (tmp_path / str(i)).mkdir()
        save_file(sd, str(tmp_path / str(i) / "model.safetensors"))
        paths.append(tmp_path / str(i))
    avg = average_state_dicts(paths)
    torch.testing.assert_close(avg["w"], torch.stack([d["w"] for d in dicts]).mean(0))
    assert avg["b"].dtype == torch.bfloat16
    torch.testing.assert_close(avg["b"], torch.stack([d["b"].float() for d in dicts]).mean(0).to(torch.bfloat16))
    assert torch.equal(avg["n"], dicts[0]["n"])  # integer tensors: the first checkpoint's
    save_file({"w": dicts[0]["w"]}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="other.safetensors: tensors differ"):
        average_state_dicts([paths[0], tmp_path / "other.safetensors"])


def test_average_last_averages_the_final_weights_and_the_newest_step_checkpoints(tmp_path, monkeypatch):
    import src.training.trainer as trainer_module

    kept = tmp_path / "kept"
    clear = trainer_module.clear_steps

    def keep_then_clear(ckpts):  # the step checkpoints are cleared at the stage end: keep a copy to compare
        for d in ckpts.glob("step-*"):
            shutil.copytree(d, kept / d.name, dirs_exist_ok=True)
        clear(ckpts)

    monkeypatch.setattr(trainer_module, "clear_steps", keep_then_clear)
    stages = [StageConfig(name="a", steps=2, lr=1e-2), StageConfig(name="b", steps=8, lr=1e-2)]
    cfg = TrainerConfig(stages=stages, progress=False, save_every=2, keep_checkpoints=2, average_last=3)
    m = model()
    t = Trainer(m, None, cfg, tmp_path / "run", batches(4))
    t.fit()
    ckpts = tmp_path / "run" / "checkpoints"
    sel = t.selection
    assert sel["rule"] == "average_last" and sel["label"] == "average of last 3 (every 2 steps)"
    assert sel["checkpoint"] == str(ckpts / "averaged") and sel["global_step"] == 10
    assert sel["averaged"] == ["b", "step-00000008", "step-00000006"]
    expected = average_state_dicts([ckpts / "b", kept / "step-00000008", kept / "step-00000006"])
    for k, v in m.state_dict().items():
        if k in expected:
            torch.testing.assert_close(v, expected[k], rtol=0, atol=0)
    assert not weights_equal(m, ckpts / "b") and not list(ckpts.glob("step-*"))


def test_patience_stops_in_the_last_stage_only(tmp_path, caplog):
    stages = [StageConfig(name="a", steps=6, lr=1e-2), StageConfig(name="b", steps=20, lr=1e-2)]
    cfg = TrainerConfig(stages=stages, progress=False, eval_every=2, patience=2, select="best_dev_loss")
    m = model()
    # stage a: two evaluations without improvement, no stop; stage b: two more, stop at step 10
    losses = {2: 1.0, 4: 2.0, 6: 2.0, 8: 3.0, 10: 3.0}
    t = scripted(Trainer(m, None, cfg, tmp_path, batches(4), batches(1)), losses)
    with caplog.at_level("INFO"):
        hist = t.fit()
    assert t.global_step == 10 < 26
    assert [h["steps"] for h in hist] == [6, 4]
    sel = t.selection
    assert (sel["stopped_early_at"], sel["global_step"], sel["dev_loss"]) == (10, 2, 1.0)
    assert read_state(tmp_path / "checkpoints" / "b")["global_step"] == 10
    assert "early stop at step 10" in caplog.text and "at step 2" in caplog.text
    assert weights_equal(m, tmp_path / "checkpoints" / "best-00000002")


RESUME_STAGES = [StageConfig(name="a", steps=4, lr=5e-3), StageConfig(name="b", steps=8, lr=5e-3)]
RESUME_LOSSES = {2: 3.0, 4: 2.0, 6: 1.5, 8: 1.6, 10: 1.2, 12: 1.3}


def resume_run(run_dir, init, loader, resume=False):
    m = model()
    m.load_state_dict(init)
    cfg = TrainerConfig(stages=RESUME_STAGES, progress=False, eval_every=2, save_every=4, select="best_dev_loss",
                        resume=resume)
    return m, scripted(Trainer(m, None, cfg, run_dir, loader, batches(1)), RESUME_LOSSES)


def test_resume_keeps_the_best_so_far(tmp_path):
    data = batches(3)
    init = {k: v.clone() for k, v in model().state_dict().items()}
    ref_model, ref = resume_run(tmp_path / "ref", init, data)
    ref.fit()
    _, crashed = resume_run(tmp_path / "run", init, Crashing(data, 10))  # dies in step 11: saved at 8, best-10
    with pytest.raises(KeyboardInterrupt):
        crashed.fit()
    ckpts = tmp_path / "run" / "checkpoints"
    # best-6 outlives the best-4 and best-2 the step-8 checkpoint pruned; best-10 came after it
    assert [d.name for d in best_dirs(ckpts)] == ["best-00000006", "best-00000010"]
    assert read_state(ckpts / "step-00000008")["best"] == {"global_step": 6, "dev_loss": 1.5}
    assert read_state(ckpts / "step-00000008")["evals_since_best"] == 1

    m2, resumed = resume_run(tmp_path / "run", {k: torch.zeros_like(v) for k, v in init.items()}, data, resume=True)
    point = resumed.checkpoints.start_point(resumed.progress)
    resumed.selector.start(point)
    assert point.global_step == 8 and resumed.selector.best == {"global_step": 6, "dev_loss": 1.5}
    assert resumed.selector.evals_since_best == 1
    assert [d.name for d in best_dirs(ckpts)] == ["best-00000006"]  # best-10 is replayed

    m2, resumed = resume_run(tmp_path / "run", {k: torch.zeros_like(v) for k, v in init.items()}, data, resume=True)
    resumed.fit()
    drop = {"checkpoint"}
    assert {k: v for k, v in resumed.selection.items() if k not in drop} == \
        {k: v for k, v in ref.selection.items() if k not in drop}
    assert resumed.selection["global_step"] == 10 and best_dirs(ckpts) == [ckpts / "best-00000010"]
    for (n, p), q in zip(ref_model.named_parameters(), m2.parameters()):
        assert torch.equal(p, q), n


def cfg_with(**kw) -> TrainerConfig:
    return TrainerConfig(stages=[StageConfig(steps=4)], progress=False, **kw)


@pytest.mark.parametrize("kw, message", [
    ({"patience": 2}, r"trainer\.patience=2 needs trainer\.eval_every"),
    ({"patience": 0, "eval_every": 2}, r"trainer\.patience=0"),
    ({"select": "best"}, r"trainer\.select: 'best' is not one of"),
    ({"average_last": 2}, r"trainer\.average_last=2 needs trainer\.save_every"),
    ({"average_last": 4, "save_every": 2}, r"trainer\.average_last=4 .* trainer\.keep_checkpoints=2"),
    ({"average_last": 2, "save_every": 2, "select": "best_dev_loss"},
     r"trainer\.average_last=2 and trainer\.select=best_dev_loss are exclusive"),
])
def test_bad_selection_settings_name_the_key(kw, message):
    with pytest.raises(UserError, match=message):
        check_trainer_config(cfg_with(**kw))


def test_allowed_selection_settings():
    check_trainer_config(cfg_with(select="best_dev_loss"))  # evaluates at the stage ends only
    check_trainer_config(cfg_with(average_last=3, save_every=2))  # final weights + the 2 kept step checkpoints
    check_trainer_config(cfg_with(average_last=1, select="best_dev_loss"))  # 1: off


@pytest.mark.parametrize("kw, key", [({"select": "best_dev_loss"}, "trainer.select=best_dev_loss"),
                                     ({"patience": 3, "eval_every": 2}, "trainer.patience=3")])
def test_dev_based_selection_without_a_dev_loader_is_refused(tmp_path, kw, key):
    with pytest.raises(UserError, match=f"{key} needs a dev split"):
        Trainer(model(), None, cfg_with(**kw), tmp_path, batches(1))


def test_the_train_pipeline_refuses_before_upcycling_when_data_has_no_dev_split(tmp_path, monkeypatch):
    import src.pipelines.train as train_module

    class Source:
        skips = SimpleNamespace(as_dict=dict)
        directions = ["de"]

        def examples(self, split):
            return ["an example"] if split == "train" else []

    monkeypatch.setattr(train_module, "load_model", lambda run: (None, None, {}))
    monkeypatch.setattr(train_module, "build_source", lambda data: Source())
    monkeypatch.setattr(train_module, "upcycle", lambda *a, **k: pytest.fail("upcycled before the check"))
    run = SimpleNamespace(data=None, output_dir=tmp_path, trainer=cfg_with(select="best_dev_loss"), seed=1)
    with pytest.raises(UserError, match="trainer.select=best_dev_loss needs a dev split: data has none"):
        train_module.train(run)
