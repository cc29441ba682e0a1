"""The data-constrained study on real pretrained weights: OpenAI's whisper-base fine-tuned on the toy corpus's
speech translation data (`experiment=base_constrained`), one comparison table with intervals.

    python scripts/real_study.py [--out DIR] [--work DIR] [--cache DIR] [--jobs N] [--time-limit S] [--dry-run]
                                [OVERRIDE ...]

Six runs, seed 1: dense, vanilla, random and drop (one stage each, as their papers train them), SPRI under its
own two-stage schedule and SPRI in one stage (its init without its schedule). First one process validates the six
configs, builds the toy corpus and converts the offline model into the cache (so no two runs build them); then the
runs, all at once by default (`--jobs`; longest first), the CPU threads divided between them (a SPRI run, which
searches its energy on the CPU, gets the most); then `python -m src.report` over the runs (BLEU per
direction, 95% intervals, Δ vs dense). `--time-limit S`: runs still going near S seconds are stopped and the
report covers those that finished. `make gpu-check` runs it as its `base_study` part (scripts/gpu_check.py; the
sizing is in conf/experiment/base_constrained.yaml).

Writes into --out (default outputs/base_study): comparison.md/.csv, summary.md and the report's plots, and per
run `runs/<run>/` with its log, train_summary.json, upcycling_report.json, metrics.jsonl and results; the run
dirs themselves (checkpoints) stay in --work/runs (default: a temp dir, removed at the end; a --work's runs/ and
logs/ are replaced). Prints one line per
finished run and then summary.md. OVERRIDEs (Hydra `key=value`) go to every run and to the preparation.

`--dry-run`: on the CPU with tiny shapes (the tests' tiny toy model and corpus instead of whisper-base, 6 optimizer
steps, 1 test sentence per direction): checks that every run, the report and the table work, and validates the
real runs' configs; about a minute on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from src.evaluation.records import TrainSummary, UpcyclingReport
from src.utils.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
EXPERIMENT = "base_constrained"
SEED = 1
REPORT_RESERVE_S = 15  # --time-limit: the report's time (bootstrap intervals and plots: ~10 s)

# The dry run: the tests' tiny toy model and corpus (tests/helpers.py TINY; gpu_check's TOY builds the same ones, so
# a cache holding them is reused) instead of whisper-base (a 30 s-padded forward pass of whisper-base costs ~2 s per
# clip on one CPU core, and SPRI's energy search makes ~100 of them), MoE in its one layer per side, 6 steps of up
# to 8 clips (SPRI: 2 + 4 over its two stages), a dev loss on 1 batch, 1 test sentence per direction. The real
# runs' configs are composed and validated by the preparation all the same, and the offline model's packages
# checked (not converted).
DRY = ["data.corpus.n_asr_train=48", "data.corpus.n_asr_dev=8", "data.corpus.n_st_train=12",
       "data.corpus.n_st_dev=4", "data.corpus.n_st_test=4", "model=whisper_toy", "model.name_or_path=null",
       "model.pad_to_30s=false", "model.toy.d_model=64", "model.toy.encoder_layers=1", "model.toy.decoder_layers=1",
       "model.toy.ffn_dim=128", "pretrain.steps=30", "pretrain.vocab_size=600", "pretrain.lr=3e-3",
       "pretrain.warmup_steps=5", "moe.every=1", "data.loader.max_batch_size=8",
       "data.loader.max_batch_frames=24000", "trainer.total_steps=6", "trainer.warmup_steps=1", "trainer.eval_every=3",
       "trainer.max_eval_batches=1", "trainer.log_every=1", "eval.max_examples_per_direction=1",
       "eval.max_new_tokens=16", "trainer.device=cpu", "trainer.precision=fp32"]

# Once before the runs: every run's config composed and validated (as src.train would), the toy corpus built, and
# the offline model converted into the cache (a dry run: its packages checked, and its toy model pretrained), so
# concurrent runs build nothing.
PREP = """
import json, sys, threading, time
t0 = time.perf_counter()
from hydra import compose, initialize_config_dir
from src.config import validate
from src.data.loading import build_source
from src.pretrained import offline
spec = json.loads(sys.argv[1])
with initialize_config_dir(config_dir=spec["conf"], version_base=None):
    real = [validate(compose("config", overrides=o)) for o in spec["real"]]
    used = [validate(compose("config", overrides=o)) for o in spec["used"]] if spec["used"] != spec["real"] else real
name, model = str(real[0].model.name_or_path), {}

def convert():  # beside the corpus build (mostly mp3 encoding, which releases the GIL)
    t = time.perf_counter()
    try:
        model["label"] = offline.resolve_offline(name, real[0].paths.cache_dir)[1]
    except BaseException as e:
        model["error"] = e
    model["seconds"] = time.perf_counter() - t

converting = threading.Thread(target=convert) if name.startswith(offline.PREFIX) and spec["convert"] else None
if converting is not None:
    converting.start()
elif name.startswith(offline.PREFIX):
    model["label"] = f"{name}: packages installed ({offline.converted_name(name[len(offline.PREFIX):])}), not converted"
else:
    model["label"] = name
t1 = time.perf_counter()
source = build_source(used[0].data)
n = {split: len(source.examples(split)) for split in ("train", "dev", "test")}
root = getattr(source, "corpus_root", None)
data = f"data {root.name if root else used[0].data.target}: {n['train']} train / {n['dev']} dev"
print(f"{len(real)} run configs valid ({t1 - t0:.0f} s); {data} / {n['test']} test examples "
      f"({time.perf_counter() - t1:.0f} s)")
if used[0].model.name_or_path is None:  # the dry run's toy model: pretrained once here, not by every run
    from pathlib import Path
    from src.pipelines.pretrain import ensure_toy_model
    toy = ensure_toy_model(used[0].model.toy, used[0].pretrain, used[0].data, used[0].paths.cache_dir, False)
    print(f"dry run: toy model {Path(toy).name}")
if converting is not None:
    converting.join()
    if "error" in model:
        raise model["error"]
print(f"model {model['label']}" + (f" ({model['seconds']:.0f} s)" if "seconds" in model else ""))
"""


@dataclass(frozen=True)
class Run:
    strategy: str
    schedule: str | None = None  # None: the strategy's default (SPRI: two stages; the others: one)

    @property
    def name(self) -> str:
        return self.strategy + (f"-{self.schedule}" if self.schedule else "")

    def overrides(self) -> list[str]:
        return [f"upcycle={self.strategy}", *([f"trainer={self.schedule}"] if self.schedule else [])]


# Longest first: the SPRI runs search their energy (upcycle.energy=auto: 11 forward passes over the calibration
# clips) on the CPU before training, so they start first and the others fill the GPU meanwhile.
RUNS = (Run("spri", "two_stage"), Run("spri", "one_stage"), Run("drop"), Run("random"), Run("vanilla"), Run("dense"))


def thread_counts(runs: list[Run], n_jobs: int, cores: int) -> dict[str, int]:
    """CPU threads per run. All at once: a SPRI run 3/8 of the cores (its upcycling, on the CPU, costs ~6x the
    others'), the others share the rest (16 cores: 6, 6, 1, 1, 1, 1); fewer at a time: the cores divided evenly."""
    if n_jobs < len(runs):
        return {r.name: max(1, cores // n_jobs) for r in runs}
    spri = [r for r in runs if r.strategy == "spri"]
    n_spri = max(1, cores * 3 // 8)
    n_other = max(1, (cores - len(spri) * n_spri) // max(1, len(runs) - len(spri)))
    return {r.name: n_spri if r in spri else n_other for r in runs}


KEEP = ("train_summary.json", "upcycling_report.json", "metrics.jsonl", "status.json", "train.log",
        "eval/test/results.md", "eval/test/results.csv")


def run_line(run: Run, rc: int, seconds: float, run_dir: Path) -> str:
    """One line per finished run: where its time went and its test BLEU."""
    if rc:
        return f"{run.name}: FAILED (exit {rc}) after {seconds:.0f} s"
    parts = [f"{run.name}: {seconds:.0f} s"]
    try:
        rep, summary = UpcyclingReport.read(run_dir), TrainSummary.read(run_dir)
    except UserError as e:
        return "; ".join([*parts, str(e)])
    if rep and rep.upcycle_seconds is not None:
        knob = f", {rep.auto['knob']} {rep.auto['value']:.3f}" if rep.auto else ""
        parts.append(f"upcycling {rep.upcycle_seconds:.1f} s{knob}")
    if summary is None:
        return "; ".join([*parts, "no train_summary.json"])
    cost, test = summary.cost, summary.results.get("test") or {}
    parts.append(f"training {cost.seconds or 0:.1f} s (" + " + ".join(f"{s.get('steps')}" for s in summary.stages)
                 + f" steps, {(cost.tokens or 0) / 1000:.1f}k target tokens)")
    parts.append(f"selected {summary.selection.get('label')}")
    if test.get("bleu") is not None:
        parts.append(f"test BLEU {test['bleu']:.2f} on {test.get('segments')} sentences")
    return "; ".join(parts)


def run_overrides(run: Run) -> list[str]:
    return [f"experiment={EXPERIMENT}", *run.overrides(), f"seed={SEED}", "progress=false"]


def start_run(run: Run, overrides: list[str], work: Path, threads: int) -> tuple[subprocess.Popen, float]:
    """The run's `src.train` process (its own process group, so a time limit can stop it and its children)."""
    log = work / "logs" / f"{run.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [PY, "-m", "src.train", *run_overrides(run), *overrides, f"hydra.run.dir={work / 'runs' / run.name}"]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log, "w") as f:
        f.write(" ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, time.perf_counter()


def stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to every run's process group, SIGKILL to those still there 5 s later."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass
        end = time.perf_counter() + 5
        for proc in procs:
            try:
                proc.wait(max(0.1, end - time.perf_counter()))
            except subprocess.TimeoutExpired:
                pass
        procs = [p for p in procs if p.poll() is None]
        if not procs:
            return


def last_line(log: Path) -> str:
    """The last line a run logged (its log's first line is the command)."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines()[1:] if line.strip()]
    except OSError:
        lines = []
    return lines[-1][:200] if lines else "(nothing yet)"


def run_all(runs: list[Run], overrides: list[str], work: Path, n_jobs: int, threads: dict[str, int],
            deadline: float | None) -> list[Run]:
    """Every run, n_jobs at a time, in order; one line each as it ends. Runs still going at ``deadline``
    (perf_counter time) are stopped and runs not yet started are not started. Returns the runs that finished."""
    todo, running, done = list(runs), {}, []
    while todo or running:
        while todo and len(running) < n_jobs and (deadline is None or time.perf_counter() < deadline):
            run = todo.pop(0)
            running[run] = start_run(run, overrides, work, threads[run.name])
        if deadline is not None and time.perf_counter() >= deadline:
            stop([proc for proc, _ in running.values()])
            for run, (_, t0) in running.items():
                print(f"{run.name}: CUT at the time limit after {time.perf_counter() - t0:.0f} s; its log's last line: "
                      + last_line(work / "logs" / f"{run.name}.log"), flush=True)
            for run in todo:
                print(f"{run.name}: not started (time limit)", flush=True)
            return done
        time.sleep(0.5)
        for run, (proc, t0) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[run]
            print(run_line(run, proc.returncode, time.perf_counter() - t0, work / "runs" / run.name), flush=True)
            if proc.returncode:
                tail = (work / "logs" / f"{run.name}.log").read_text(errors="replace").splitlines()[-15:]
                print("    " + "\n    ".join(tail), flush=True)
            else:
                done.append(run)
    return done


def keep(work: Path, out: Path, runs: list[Run]) -> None:
    """The small files of every run into out/runs/<run>/ (not the checkpoints)."""
    for run in runs:
        dst = out / "runs" / run.name
        dst.mkdir(parents=True, exist_ok=True)
        log = work / "logs" / f"{run.name}.log"
        if log.exists():
            shutil.copyfile(log, dst / "job.log")
        for rel in KEEP:
            src = work / "runs" / run.name / rel
            if src.exists():
                shutil.copyfile(src, dst / Path(rel).name)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "outputs" / "base_study"))
    ap.add_argument("--work", default=None, help="run dirs with their checkpoints (default: a temp dir, removed)")
    ap.add_argument("--cache", default=None, help="paths.cache_dir (default: $UPCYCLE_ST_CACHE, else .cache)")
    ap.add_argument("--jobs", type=int, default=len(RUNS), help="runs at a time (default: all 6)")
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny shapes: check that every run and the report work")
    ap.add_argument("--time-limit", type=float, default=None,
                    help=f"seconds for the whole study: runs still going {REPORT_RESERVE_S} s before it are stopped "
                         "and the report covers the finished ones")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for every run (key=value)")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    cache = Path(args.cache or os.environ.get("UPCYCLE_ST_CACHE") or ROOT / ".cache").resolve()
    overrides = [f"paths.cache_dir={cache}", *(DRY if args.dry_run else []), *args.overrides]
    n_jobs = max(1, args.jobs)
    threads = thread_counts(list(RUNS), n_jobs, os.cpu_count() or 1)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="real_study_") as tmp:
        work = Path(args.work).resolve() if args.work else Path(tmp)
        if out.exists() and any(out.iterdir()):
            if not ((out / "summary.md").exists() or (out / "runs").is_dir()):
                print(f"error: --out {out} holds something else than a study's tables; choose another", file=sys.stderr)
                return 2
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        for old in (work / "runs", work / "logs"):
            if old.exists():
                shutil.rmtree(old)
        paths = [f"paths.root_dir={ROOT}", f"paths.output_dir={work / 'prep'}"]
        real = [[*run_overrides(run), *paths, f"paths.cache_dir={cache}", *args.overrides] for run in RUNS]
        spec = {"conf": str(ROOT / "conf"), "real": real, "convert": not args.dry_run,
                "used": [[*run_overrides(run), *paths, *overrides] for run in RUNS]}
        t0 = time.perf_counter()
        proc = subprocess.run([PY, "-c", PREP, json.dumps(spec)], cwd=ROOT, capture_output=True, text=True)
        if proc.returncode:
            print(f"preparation failed (exit {proc.returncode}):\n{proc.stdout}{proc.stderr[-3000:]}", flush=True)
            return 1
        print(f"prepared in {time.perf_counter() - t0:.0f} s: " + "; ".join(proc.stdout.strip().splitlines()),
              flush=True)
        print(f"{len(RUNS)} runs of experiment={EXPERIMENT}, {n_jobs} at a time; CPU threads: "
              + ", ".join(f"{name} {n}" for name, n in threads.items()), flush=True)
        deadline = t_start + args.time_limit - REPORT_RESERVE_S if args.time_limit else None
        done = run_all(list(RUNS), overrides, work, n_jobs, threads, deadline)
        keep(work, out, list(RUNS))
        t0 = time.perf_counter()
        report = subprocess.run([PY, "-m", "src.report", str(work / "runs"), "--out", str(out)], cwd=ROOT,
                                capture_output=True, text=True)
        if report.returncode:
            print(f"report failed (exit {report.returncode}):\n{report.stdout[-1000:]}{report.stderr[-3000:]}",
                  flush=True)
            return 1
        print(f"report in {time.perf_counter() - t0:.0f} s; total {time.perf_counter() - t_start:.0f} s; "
              f"tables and plots in {out}\n", flush=True)
    print((out / "summary.md").read_text())
    if len(done) < len(RUNS):
        print(f"\n{len(RUNS) - len(done)} of {len(RUNS)} runs did not finish: the table has "
              f"{', '.join(r.name for r in done) or 'none'}")
    return 0 if len(done) == len(RUNS) else 1


if __name__ == "__main__":
    sys.exit(main())
