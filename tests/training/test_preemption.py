"""A run that is stopped or rerun (issue 33): stop signals save and stop, a rerun of the same command continues,
damaged trainer-state files cost their checkpoint, write errors are one line, SPRI's stage record survives."""

from __future__ import annotations

import json
import os
import signal
import threading

import pytest
import torch
from helpers import Crashing, batches, tiny_whisper, upcycling

from src.training.checkpoint import read_state, step_dirs
from src.training.config import StageConfig, TrainerConfig
from src.training.loggers import ConsoleLogger
from src.training.signals import StopSignals
from src.training.trainer import Trainer
from src.utils.errors import Preempted, UserError
from src.utils.extension import TrainerExtension

pytestmark = pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                                reason="signal handlers need the main thread")

STAGES = [StageConfig(name="a", steps=4, lr=5e-3), StageConfig(name="b", steps=4, lr=5e-3, schedule="cosine")]


def model(dropout: float = 0.1):
    from src.models.backbone import set_pad_to_30s

    m = tiny_whisper()
    m.config.dropout = dropout
    for mod in m.modules():
        if hasattr(mod, "dropout") and isinstance(mod.dropout, float):
            mod.dropout = dropout
    set_pad_to_30s(m, False)
    return m


class SignalAt(TrainerExtension):
    """Sends its own process ``signum`` during global step ``step`` (1-based), once: a scheduler's stop, mid-step."""

    def __init__(self, step: int, signum: int = signal.SIGTERM) -> None:
        self.step, self.signum = step, signum

    def after_backward(self, model, step: int) -> None:
        if step + 1 == self.step:
            os.kill(os.getpid(), self.signum)


def cfg(**kw) -> TrainerConfig:
    return TrainerConfig(**{"stages": STAGES, "progress": False, "log_every": 1, **kw})


def reference(tmp_path, init, data):
    ref = model()
    ref.load_state_dict(init)
    torch.manual_seed(0)
    Trainer(ref, None, cfg(), tmp_path / "ref", data).fit()
    return ref


def reference_and_twin(tmp_path, data):
    """(the uninterrupted run's model, a model with its initial weights and random stream, about to be cut)."""
    init = {k: v.clone() for k, v in model().state_dict().items()}
    ref = reference(tmp_path, init, data)
    twin = model()
    twin.load_state_dict(init)
    torch.manual_seed(0)
    return ref, twin


def same_weights(a, b) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def fresh_model():
    m = model()
    torch.nn.init.normal_(m.model.decoder.embed_tokens.weight)  # other weights: the checkpoint must supply them
    torch.manual_seed(123)  # and another random stream
    return m


@pytest.mark.parametrize("stop_at", [3, 6])  # mid stage a; mid stage b
def test_sigterm_finishes_the_step_saves_and_rerunning_the_same_command_continues_exactly(tmp_path, stop_at):
    """No save_every at all: the signal's own checkpoint is what the rerun (default trainer.resume=auto) uses."""
    data = batches(3)
    ref, m1 = reference_and_twin(tmp_path, data)
    with pytest.raises(Preempted) as err:
        Trainer(m1, None, cfg(), tmp_path / "run", data, extensions=[SignalAt(stop_at)]).fit()
    saved = tmp_path / "run" / "checkpoints" / f"step-{stop_at:08d}"
    assert (err.value.signum, err.value.step, err.value.checkpoint) == (signal.SIGTERM, stop_at, str(saved))
    assert err.value.exit_code == 143 and read_state(saved)["global_step"] == stop_at
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the trainer's handler is gone after fit
    m2 = fresh_model()
    Trainer(m2, None, cfg(), tmp_path / "run", data).fit()  # the same command again
    assert same_weights(ref, m2)


def test_a_handler_installed_before_the_trainer_is_handed_on_after_the_save(tmp_path):
    """submitit installs a SIGUSR2 handler that requeues the SLURM job: it must run once the checkpoint is written."""
    seen = []
    ckpt = tmp_path / "checkpoints" / "step-00000002"

    def requeue(signum, frame):
        seen.append((signum, (ckpt / "COMPLETE").exists()))

    old = signal.signal(signal.SIGUSR2, requeue)
    try:
        with pytest.raises(Preempted) as err:
            Trainer(model(), None, cfg(), tmp_path, batches(3), extensions=[SignalAt(2, signal.SIGUSR2)]).fit()
        assert signal.getsignal(signal.SIGUSR2) is requeue and seen == []  # not called by the trainer...
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert err.value.then is requeue and err.value.exit_code == 128 + signal.SIGUSR2
    err.value.then(err.value.signum, None)  # ... but by the entry point, once status.json is written
    assert seen == [(signal.SIGUSR2, True)]


def test_a_second_ctrl_c_stops_at_once():
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_resume_false_refuses_a_dir_with_checkpoints_and_auto_starts_clean(tmp_path, caplog):
    """A rerun never silently trains over checkpoints; a fresh start drops an earlier attempt's metric rows and sets
    unusable checkpoints aside."""
    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        Trainer(model(), None, cfg(save_every=2), run, Crashing(batches(3), 3)).fit()  # saved at step 2
    with pytest.raises(UserError, match=r"trainer.resume=false would train over them: trainer.resume=auto continues"):
        Trainer(model(), None, cfg(resume=False), run, batches(3)).fit()
    for d in step_dirs(run / "checkpoints"):
        (d / "model.safetensors").write_bytes(b"\0" * 12)  # nothing usable left
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n{"step": 7, "loss": 9.0}\n')
    logger = ConsoleLogger(log_every_to_console=False)
    logger.start(run, {})
    with caplog.at_level("WARNING"):
        Trainer(model(), None, cfg(), run, batches(3), logger=logger).fit()
    logger.finish()
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9)) and 9.0 not in [json.loads(x)["loss"] for x in
                                                     (run / "metrics.jsonl").read_text().splitlines()]
    assert (run / "checkpoints.unusable" / "step-00000002").is_dir() and "moved to" in caplog.text
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["a", "b"]


class NeedsCode:
    """Pickled into a trainer-state file, it needs this class to load: weights_only refuses it."""


@pytest.mark.parametrize("name, damage, problem", [
    ("rng_state.pt", lambda p: torch.save({"ranks": [NeedsCode()]}, p), "rng_state.pt: unreadable"),
    ("optimizer.pt", lambda p: torch.save({"something": torch.zeros(2)}, p), "optimizer.pt: not a trainer state"),
    ("optimizer.pt", lambda p: p.write_bytes(b"PK\x03\x04" + os.urandom(64)), "optimizer.pt: unreadable"),
])
def test_a_bad_trainer_state_file_costs_its_checkpoint_and_the_previous_one_is_used(tmp_path, caplog, name, damage,
                                                                                   problem):
    data = batches(3)
    ref, m1 = reference_and_twin(tmp_path, data)
    with pytest.raises(KeyboardInterrupt):
        Trainer(m1, None, cfg(save_every=2, keep_checkpoints=3), tmp_path / "run", Crashing(data, 7)).fit()
    newest = step_dirs(tmp_path / "run" / "checkpoints")[0]
    damage(newest / name)
    m2 = fresh_model()
    with caplog.at_level("INFO"):
        Trainer(m2, None, cfg(save_every=2), tmp_path / "run", data).fit()
    assert same_weights(ref, m2)
    assert f"skipping checkpoint {newest.name}" in caplog.text and problem in caplog.text
    assert "resuming at stage 2 step 0 (global step 4)" in caplog.text


def test_a_checkpoint_write_error_is_one_line_naming_it(tmp_path, monkeypatch):
    from src.utils.atomic import OutputError

    m = model()

    def refuse(path, **kw):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(m, "save_pretrained", refuse)
    with pytest.raises(OutputError) as err:
        Trainer(m, None, cfg(save_every=2), tmp_path, batches(3)).fit()
    message = str(err.value)
    assert message.startswith(f"cannot write checkpoint {tmp_path / 'checkpoints' / 'step-00000002'}: Permission "
                              "denied") and "\n" not in message


def spri_run(run_dir, data):
    """A two-stage SPRI run on the tiny model (stage 1: residual + routers), returning (trainer, history)."""
    m, _, result = upcycling("spri", energy=0.5)
    stages = [StageConfig(name="stage1", steps=4, lr=1e-2, trainable=["residual", "router"]),
              StageConfig(name="stage2", steps=4, lr=1e-3, trainable=["all"])]
    t = Trainer(m, None, TrainerConfig(stages=stages, progress=False, save_every=2), run_dir, data,
                extensions=result.extensions)
    return t, t.fit()


@pytest.mark.parametrize("crash_after", [3, 7])  # mid stage 1; mid stage 2
def test_spri_stage_movement_and_the_stage_history_survive_a_resume(tmp_path, crash_after):
    """The residual norms are the init's (saved with the checkpoint, not recomputed from resumed weights), the
    resumed stage measures from its own start, and the finished stage stays in the history."""
    data = batches(4)
    for b in data:
        b["feature_lengths"] = torch.tensor([64, 64])
    ref, ref_hist = spri_run(tmp_path / "ref", data)
    with pytest.raises(KeyboardInterrupt):
        spri_run(tmp_path / "run", Crashing(data, crash_after))
    resumed, hist = spri_run(tmp_path / "run", data)
    assert [h["stage"] for h in hist] == ["stage1", "stage2"]
    assert [h["expert_movement"] for h in hist] == [h["expert_movement"] for h in ref_hist]
    for key, norm in ref.extensions[0].residual_norm.items():
        assert torch.equal(resumed.extensions[0].residual_norm[key], norm), key


def test_a_metrics_log_write_error_is_one_line_naming_the_log(tmp_path):
    from src.utils.atomic import OutputError

    logger = ConsoleLogger(log_every_to_console=False)
    logger.start(tmp_path, {})

    class Full:
        def write(self, text):
            raise OSError(28, "No space left on device")

    logger._fh = Full()
    with pytest.raises(OutputError) as err:
        logger.log_metrics({"loss": 1.0}, 1)
    assert str(err.value).startswith(f"cannot write {tmp_path / 'metrics.jsonl'}: No space left on device")


class Rows:
    """A logger keeping every record (what metrics.jsonl would hold)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, dict]] = []

    def log_metrics(self, record: dict, step: int) -> None:
        self.rows.append((step, record))


def test_the_first_log_line_after_a_mid_window_resume_averages_the_whole_window(tmp_path):
    """log_every=3, stopped after step 2: the rerun's line at step 3 is the loss over steps 1-3, as uninterrupted."""
    data = batches(3)
    init = {k: v.clone() for k, v in model().state_dict().items()}
    losses = []
    for stop_at in (None, 2):
        m, rows = model(), Rows()
        m.load_state_dict(init)
        torch.manual_seed(0)
        if stop_at is not None:
            with pytest.raises(Preempted):
                Trainer(m, None, cfg(log_every=3), tmp_path / "cut", data, extensions=[SignalAt(stop_at)]).fit()
        run = tmp_path / ("cut" if stop_at else "ref")
        Trainer(m, None, cfg(log_every=3), run, data, logger=rows).fit()
        losses.append({step: r["loss"] for step, r in rows.rows if "loss" in r})
    ref, resumed = losses
    assert sorted(ref) == [3, 4, 7, 8] and resumed == ref  # the same lines, bit for bit
