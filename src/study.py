"""The study runner (`make study`, `python -m src.study`): every regime of the upcycling comparison, one runner.

    python -m src.study [--regimes toy_constrained,toy_demo] [--strategies dense,vanilla,drop,spri]
                        [--fractions 0.1,0.3333] [--one-stage drop] [--seeds 1,2,3] [--jobs N] [--out outputs/study]
                        [--cache DIR] [--stage1-lr LR] [--equivalence-margin M] [--time-limit S] [--export DIR]
                        [--dry-run] [--tiny] [OVERRIDE ...]
    python -m src.study --readme DIR     # write DIR's tables into README.md's study blocks
    python -m src.study --report DIR     # (re)write DIR's reports and README blocks from its finished jobs

A regime is one entry of REGIMES (`Regime`): its experiment, its rows (strategy, schedule, overrides), its seeds,
whether its pretrained model is the same for every seed, whether its jobs need a preparation first, and its tiny
shapes for --tiny. Default: the toy schedule study, SPRI's init separated from its schedule:
  toy_constrained, toy_demo  (`experiment=toy_constrained`: 40 clips per direction, best dev loss;
                 `experiment=toy_demo`: compute-bound, 400 per direction) every MoE strategy under
                 `trainer=one_stage` and under `trainer=two_stage` with stage 1 taking each of `--fractions` of
                 the same step budget, plus dense; 3 seeds, each its own toy model (pretrained first). Strategies
                 named by `--one-stage` (default: drop) run only as their papers train them (one stage): vanilla's
                 two-stage rows answer whether the schedule is SPRI's or anyone's, drop's would add 12 of the
                 study's 60 jobs (48 by default) and answer nothing the others do not.
  base_constrained  real weights (`experiment=base_constrained`: OpenAI's whisper-base, offline:base, 60 clips per
                 direction, best dev loss; GPU-sized): dense; vanilla, random and drop in one stage (as their
                 papers train them); SPRI in one stage and in its own two stages; SPRI in one stage at a larger
                 diversity budget (`upcycle.max_init_kl=0.3`: the default 0.05 keeps energy 0.999 of
                 whisper-base's FFNs, nearly vanilla; its row label reads `spri[max_init_kl=0.3]`, so it is a
                 row of its own, contrasted with vanilla and with SPRI's default). Seed 1: a fine-tuning seed (the
                 pretrained model is fixed; a seed varies what fine-tuning draws: the routers, a strategy's own
                 draws, the data order). All jobs at once, sharing the GPU; the CPU threads split by each
                 strategy's upcycling cost (SPRI's energy search ~6x the others'). `make gpu-check` runs it as its
                 base_study part.
  base_cpu       the same rows on a 2-core CPU (`experiment=base_cpu`: the encoder frozen and cached, a 10 s
                 window, MoE in the decoder's FFNs, the toy corpus's real lexicon); 3 fine-tuning seeds, two jobs
                 at a time.
A regime with a preparation (the real ones) first validates every job's config, builds the corpus and converts the
offline model into the cache, once, so the parallel jobs build nothing.

Each table of a regime gets a report (src.report, with intervals) and its family of contrasts, named from the rows
before any number is read (`study_family`; Holm within it; --dry-run prints it). Resumable: each job has a fixed
run dir (<out>/<regime>/<strategy>-<schedule>[-<tag>]-seed<N>); a job with a train_summary.json is done and
skipped, one with checkpoints resumes (trainer.resume=true), so a study cut short continues where it stopped. Jobs
run regime by regime (toy_constrained, SPRI's claimed regime, first), seed by seed, so what finished first is a
complete comparison. One line per finished job on the console; each job's own output goes to
<out>/<regime>/logs/<job>.log. `--time-limit S`: jobs still going near S seconds are stopped (their process
groups) and the reports cover those that finished. `--tiny`: every job at its regime's tiny shapes on the CPU (the
tests' tiny toy model and corpus, 6 steps): checks that the preparation, every job and the reports work; its
numbers mean nothing. `--export DIR`: afterwards, the reports, logs and each run's records and results (not its
checkpoints) into DIR (a device machine's $OUT). OVERRIDEs (Hydra `key=value`) go to every job and the preparation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
# Every toy job's optimizer-step budget, as the study ran (make demo's toy_demo runs 800, to fit its 14 minutes; the
# study's compute-bound regime stays what README's study tables measured).
STUDY_STEPS = 1200
# README blocks filled by --readme: one comparison per regime, and the study's timing.
README_BLOCKS = {"study-toy_demo": "toy_demo/readme.md", "study-toy_constrained": "toy_constrained/readme.md",
                 "study-timing": "timing.md", "study-base_cpu": "base_cpu/readme.md",
                 "study-base_cpu-timing": "base_cpu/timing.md"}
# The methods the family contrasts (the strategy under study and the init it is compared with) and the baseline.
SPRI, VANILLA, DENSE = "spri", "vanilla", "dense"
MAIN = ""  # a regime's main table (<regime>/report/); another table T is <regime>/report-T/
REPORT_RESERVE_S = 10  # --time-limit: each report's time (bootstrap intervals and plots: ~3-10 s)
# --tiny: the tiny toy model and corpus (conf/experiment/tiny.yaml, after the regime's experiment; the tests and
# gpu_check build the same ones, so a cache holding them is reused) instead of whisper-base (a 30 s-padded forward
# pass of whisper-base costs ~2 s per clip on one CPU core, and SPRI's energy search makes ~100 of them), MoE in its
# one layer per side, 6 steps of up to 8 clips (SPRI two-stage: 2 + 4), a dev loss on 1 batch, 1 test sentence per
# direction. A preparation still composes and validates the real jobs' configs, and checks the offline model's
# packages (not converted).
TINY = ("+experiment@_global_=tiny", "moe.every=1", "data.loader.max_batch_size=8",
        "data.loader.max_batch_frames=24000", "trainer.total_steps=6", "trainer.warmup_steps=1",
        "trainer.eval_every=3", "trainer.max_eval_batches=1", "trainer.log_every=1",
        "eval.max_examples_per_direction=1", "eval.max_new_tokens=16", "trainer.device=cpu", "trainer.precision=fp32")


@dataclass(frozen=True)
class Row:
    """One comparison row: a strategy under a schedule, with its own overrides (a budget, say: then a ``tag``
    names its runs apart), in the report tables ``tables``."""

    strategy: str
    fraction: float | None = None  # stage 1's share under trainer=two_stage; None: trainer=one_stage
    overrides: tuple[str, ...] = ()
    tag: str = ""
    tables: tuple[str, ...] = (MAIN,)
    # The method variant its overrides make, as the run's row label reads it (src/evaluation/records.py
    # MethodLabel: `spri[max_init_kl=0.3]`, a variant knob off its default): '' for the strategy's defaults.
    variant: str = ""

    @property
    def schedule(self) -> str:
        """The schedule key the run records (src/evaluation/records.py schedule_labels): one_stage, two_stage33."""
        return "one_stage" if self.fraction is None else f"two_stage{round(100 * self.fraction)}"

    @property
    def ref(self) -> str:
        """The row as src.report's contrasts name it (METHOD/SCHEDULE, the method with its variant)."""
        return f"{self.strategy}{f'[{self.variant}]' if self.variant else ''}/{self.schedule}"

    @property
    def name(self) -> str:
        return f"{self.strategy}-{self.schedule}" + (f"-{self.tag}" if self.tag else "")


@dataclass(frozen=True)
class Regime:
    """A regime of the study, as data: one more regime is one more entry of REGIMES."""

    experiment: str
    rows: tuple[Row, ...]
    seeds: tuple[int, ...]
    # True: one pretrained checkpoint for every seed, so seeds are fine-tuning seeds; False: each seed pretrains
    # its own toy model (the model is a seed), built before the jobs by the demo's corpus and model phases.
    fixed_model: bool
    # Validate every job's config, build the corpus and convert the offline model once, before the parallel jobs.
    prepare: bool
    tiny: tuple[str, ...] = TINY  # --tiny: the overrides that shrink every job to a CPU check
    overrides: tuple[str, ...] = ()  # every job's
    grid: bool = False  # the rows are the schedule grid: --strategies, --fractions and --one-stage rebuild them
    # Jobs share one GPU: every job at once by default, and the CPU threads (which do the upcycling) split by
    # these weights per strategy (others 1); without, the cores are divided evenly.
    all_at_once: bool = False
    cpu_weights: tuple[tuple[str, int], ...] = ()
    # Each finished row's init decoded (English transcription at init, `src.evaluate at_init=true`) before the
    # reports: the table's "EN WER at init". For a pretrained Whisper; the toy models' English is the toy's own.
    init_cost: bool = False

    def weight(self, strategy: str) -> int:
        return dict(self.cpu_weights).get(strategy, 1)

    @property
    def tables(self) -> list[str]:
        return list(dict.fromkeys(t for row in self.rows for t in row.tables))

    def table_rows(self, table: str) -> list[Row]:
        return [row for row in self.rows if table in row.tables]


@dataclass(frozen=True)
class Job:
    regime: Regime
    row: Row
    seed: int

    @property
    def name(self) -> str:
        return f"{self.row.name}-seed{self.seed}"

    @property
    def title(self) -> str:
        return f"{self.regime.experiment} {self.name}"

    def overrides(self, stage1_lr: float | None = None) -> list[str]:
        out = [f"experiment={self.regime.experiment}", f"upcycle={self.row.strategy}", f"seed={self.seed}",
               *self.regime.overrides]
        if self.row.fraction is None:
            return [*out, "trainer=one_stage", *self.row.overrides]
        out += ["trainer=two_stage", f"trainer.stage1_fraction={self.row.fraction}"]
        return out + ([f"trainer.stage1_lr={stage1_lr}"] if stage1_lr is not None else []) + [*self.row.overrides]


def grid_rows(strategies: Sequence[str], fractions: Sequence[float], one_stage: Sequence[str] = ()) -> tuple[Row, ...]:
    """The schedule grid: each strategy in one stage and, unless dense or in ``one_stage``, in two stages at each
    stage-1 share."""
    rows = []
    for strategy in strategies:
        rows.append(Row(strategy))
        if strategy != DENSE and strategy not in one_stage:
            rows += [Row(strategy, f) for f in fractions]
    return tuple(rows)


TOY_STRATEGIES, TOY_FRACTIONS, TOY_ONE_STAGE = (DENSE, VANILLA, "drop", SPRI), (0.1, 0.3333), ("drop",)
TOY_ROWS = grid_rows(TOY_STRATEGIES, TOY_FRACTIONS, TOY_ONE_STAGE)
LARGER_BUDGET = Row(SPRI, overrides=("upcycle.max_init_kl=0.3",), tag="kl0.3", variant="max_init_kl=0.3")
# SPRI first: its upcycling (energy=auto) runs on the CPU before training, so the others fill the GPU meanwhile.
REAL_ROWS = (Row(SPRI, 0.3333), Row(SPRI), LARGER_BUDGET, Row("drop"), Row("random"), Row(VANILLA), Row(DENSE))
REGIMES = {
    "toy_constrained": Regime("toy_constrained", TOY_ROWS, (1, 2, 3), fixed_model=False, prepare=False,
                              overrides=(f"trainer.total_steps={STUDY_STEPS}",), grid=True),
    "toy_demo": Regime("toy_demo", TOY_ROWS, (1, 2, 3), fixed_model=False, prepare=False,
                       overrides=(f"trainer.total_steps={STUDY_STEPS}",), grid=True),
    "base_constrained": Regime("base_constrained", REAL_ROWS, (1,), fixed_model=True, prepare=True,
                               all_at_once=True, cpu_weights=((SPRI, 6),), init_cost=True),
    "base_cpu": Regime("base_cpu", REAL_ROWS, (1, 2, 3), fixed_model=True, prepare=True, init_cost=True),
}
DEFAULT_REGIMES = ("toy_constrained", "toy_demo")  # SPRI's claimed regime first: a study cut short has it


def planned(regime: Regime, strategies: list[str] | None, fractions: list[float] | None,
            one_stage: list[str] | None, seeds: list[int] | None) -> Regime:
    """The regime as this run plans it: a grid regime's rows rebuilt from the options given (else its own), another
    regime's rows those of ``strategies``; ``seeds`` in place of its own."""
    if regime.grid and (strategies, fractions, one_stage) != (None, None, None):
        rows = grid_rows(strategies or TOY_STRATEGIES, TOY_FRACTIONS if fractions is None else fractions,
                         TOY_ONE_STAGE if one_stage is None else one_stage)
    else:
        rows = tuple(row for row in regime.rows if strategies is None or row.strategy in strategies)
    return replace(regime, rows=rows, seeds=tuple(seeds) if seeds else regime.seeds)


def study_jobs(regimes: Sequence[Regime]) -> list[Job]:
    """Regime-major, then seed: the first regime's comparison over every seed finishes first."""
    return [Job(regime, row, seed) for regime in regimes for seed in regime.seeds for row in regime.rows]


def study_family(rows: Sequence[Row]) -> list[str]:
    """A table's primary family, named from its rows before any number is read (`src.report --contrast`, Holm
    within it): SPRI's init (SPRI vs vanilla, one stage each), SPRI's schedule (two stages vs one, per stage-1
    share), the same schedule on vanilla's init, and each one-stage baseline vs dense (so the best of them is
    covered); a SPRI variant (another budget) gets its init vs vanilla's and vs SPRI's default; a contrast whose
    rows the table lacks is not named."""
    by_ref = {row.ref: row for row in rows}
    one = "one_stage"
    family = []
    if {f"{SPRI}/{one}", f"{VANILLA}/{one}"} <= set(by_ref):
        family.append(f"SPRI's init={SPRI}/{one} vs {VANILLA}/{one}")
    for row in (r for r in rows if r.strategy == SPRI and r.variant and r.fraction is None):
        if f"{VANILLA}/{one}" in by_ref:
            family.append(f"SPRI's init at {row.tag or row.variant}={row.ref} vs {VANILLA}/{one}")
        if f"{SPRI}/{one}" in by_ref:
            family.append(f"SPRI's budget {row.tag or row.variant} vs its default={row.ref} vs {SPRI}/{one}")
    for f in dict.fromkeys(row.fraction for row in rows if row.fraction is not None):
        key, pct = Row("", f).schedule, round(100 * f)
        for strategy, name in ((SPRI, f"SPRI's schedule {pct}%"), (VANILLA, f"the schedule {pct}% on vanilla's init")):
            if {f"{strategy}/{key}", f"{strategy}/{one}"} <= set(by_ref):
                family.append(f"{name}={strategy}/{key} vs {strategy}/{one}")
    if f"{DENSE}/{one}" in by_ref:
        family += [f"baseline {row.strategy} vs dense={row.ref} vs {DENSE}/{one}" for row in rows
                   if row.fraction is None and row.strategy not in (DENSE, SPRI)]
    return family


def table_family(regime: Regime, table: str) -> list[str]:
    """The family of one of the regime's tables: the main one's whole family; another's, the contrasts of the rows
    only it has (its other rows are there as what they are compared with)."""
    rows = regime.table_rows(table)
    family = study_family(rows)
    if table == MAIN:
        return family
    own = {row.ref for row in rows if MAIN not in row.tables}
    return [c for c in family if own & set(c.partition("=")[2].split(" vs "))]


def merge_overrides(*groups: Sequence[str]) -> list[str]:
    """Hydra overrides, a later value of a key replacing an earlier one in place (--tiny's step budget replaces a
    regime's: Hydra refuses a key given twice)."""
    merged: dict[str, str] = {}
    for override in (o for group in groups for o in group):
        merged[override.split("=", 1)[0].lstrip("+~")] = override
    return list(merged.values())


@dataclass(frozen=True)
class Options:
    """What this run adds to every job's own overrides."""

    extra: tuple[str, ...] = ()  # the cache dir, the user's OVERRIDEs
    tiny: bool = False  # each regime's tiny shapes
    stage1_lr: float | None = None  # the two-stage jobs' trainer.stage1_lr

    def overrides(self, job: Job) -> list[str]:
        """The job's overrides as it runs: its own, its regime's tiny shapes (--tiny), then ``extra``."""
        return merge_overrides(job.overrides(self.stage1_lr), job.regime.tiny if self.tiny else (), self.extra)


def job_command(job: Job, out: Path, opts: Options = Options(), fresh: bool = True) -> tuple[list[str], Path] | None:
    """The job's command and run dir; None when it already finished (its train_summary.json exists). ``fresh``:
    a run dir that saved nothing is removed (the job starts again)."""
    run_dir = out / job.regime.experiment / job.name
    if (run_dir / "train_summary.json").is_file():
        return None
    cmd = [PY, "-m", "src.train", *opts.overrides(job), "progress=false", f"hydra.run.dir={run_dir}"]
    if (run_dir / "checkpoints").is_dir():
        cmd.append("trainer.resume=true")  # cut short: continue from its last checkpoint
    elif run_dir.exists() and fresh:
        shutil.rmtree(run_dir)  # started but nothing saved: start again
    return cmd, run_dir


# --------------------------------------------------------------------------------------------------------------
# the preparation: a child process (`python -m src.study --prepare SPEC`), so the runner itself imports no torch


def prepare_spec(regime: Regime, jobs: list[Job], out: Path, opts: Options) -> dict:
    """What the preparation composes: every job's config as it will run (``used``) and without --tiny (``real``),
    Hydra's runtime paths given (compose has no run dir)."""
    paths = [f"paths.root_dir={ROOT}", f"paths.output_dir={out / regime.experiment / '.prepare'}"]
    mine = [job for job in jobs if job.regime == regime]
    real = [merge_overrides(replace(opts, tiny=False).overrides(job), paths) for job in mine]
    used = [merge_overrides(opts.overrides(job), paths) for job in mine]
    return {"conf": str(ROOT / "conf"), "real": real, "used": used, "convert": not opts.tiny,
            "result": str(out / regime.experiment / "logs" / "prepared.txt")}


def prepare(spec_file: Path) -> int:
    """The preparation's child: the configs validated, the corpus built, the offline model converted beside it (a
    --tiny run: its packages checked, and its toy model pretrained); one line each into the spec's result file."""
    spec = json.loads(Path(spec_file).read_text())
    t0 = time.perf_counter()
    real = _validated(spec["conf"], spec["real"])
    used = real if spec["used"] == spec["real"] else _validated(spec["conf"], spec["used"])
    lines = [f"{len(real)} run configs valid ({time.perf_counter() - t0:.0f} s)"]
    model: dict = {}
    converting = _start_conversion(real[0], spec["convert"], model)
    lines.append(_build_corpus(used[0]))
    if used[0].model.name_or_path is None:  # --tiny's toy model: pretrained once here, not by every job
        from src.pipelines.pretrain import ensure_toy_model

        toy = ensure_toy_model(used[0].model.toy, used[0].pretrain, used[0].data, used[0].paths.cache_dir, False)
        lines.append(f"tiny toy model {Path(toy).name}")
    if converting is not None:
        converting.join()
        if "error" in model:
            raise model["error"]
    lines.append(f"model {model['label']}" + (f" ({model['seconds']:.0f} s)" if "seconds" in model else ""))
    Path(spec["result"]).write_text("\n".join(lines) + "\n")
    return 0


def _validated(conf: str, overrides: list[list[str]]) -> list:
    from hydra import compose, initialize_config_dir

    from src.config import validate

    with initialize_config_dir(config_dir=conf, version_base=None):
        return [validate(compose("config", overrides=o)) for o in overrides]


def _start_conversion(run, convert: bool, model: dict) -> threading.Thread | None:
    """The offline model's conversion into the cache, in a thread beside the corpus build (mostly mp3 encoding,
    which releases the GIL); ``model`` gets its label, seconds, or error. None when nothing is converted."""
    from src.pretrained import offline

    name = str(run.model.name_or_path)
    if not name.startswith(offline.PREFIX):
        model["label"] = name
        return None
    if not convert:
        dist = offline.converted_name(name[len(offline.PREFIX):])
        model["label"] = f"{name}: packages installed ({dist}), not converted"
        return None

    def work() -> None:
        t = time.perf_counter()
        try:
            model["label"] = offline.resolve_offline(name, run.paths.cache_dir)[1]
        except BaseException as e:  # noqa: BLE001 - raised again in the main thread
            model["error"] = e
        model["seconds"] = time.perf_counter() - t

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def _build_corpus(run) -> str:
    from src.data.loading import build_source

    t = time.perf_counter()
    source = build_source(run.data)
    n = {split: len(source.examples(split)) for split in ("train", "dev", "test")}
    root = getattr(source, "corpus_root", None)
    return (f"data {root.name if root else run.data.target}: {n['train']} train / {n['dev']} dev / {n['test']} "
            f"test examples ({time.perf_counter() - t:.0f} s)")


def prepare_phases(regimes: list[Regime], jobs: list[Job], out: Path, opts: Options, t) -> int:
    """Before any job: the toy regimes' corpus and one toy model per seed (the demo's phases, once: they share
    both), and each prepared regime's preparation; the first failure's exit status, else 0."""
    from src.demo import demo_phases
    from src.entry import timing

    toy = [r for r in regimes if not r.fixed_model]
    if toy:
        seeds = ",".join(str(s) for s in dict.fromkeys(s for r in toy for s in r.seeds))
        overrides = merge_overrides(toy[0].tiny if opts.tiny else (), opts.extra)
        for name, cmd, note, watch in demo_phases(toy[0].experiment, DENSE, seeds, out, 1, overrides)[:2]:
            if rc := timing.run_phase(name, cmd, t, note=note, log=out / "logs" / f"{name.replace(' ', '_')}.log",
                                  watch=watch):
                return rc
    for regime in (r for r in regimes if r.prepare):
        if rc := prepare_regime(regime, jobs, out, opts, t):
            return rc
    return 0


def prepare_regime(regime: Regime, jobs: list[Job], out: Path, opts: Options, t) -> int:
    """The regime's preparation as a timed phase (its output in logs/prepare.log), then its findings in one line."""
    from src.entry import timing

    spec = prepare_spec(regime, jobs, out, opts)
    path = out / regime.experiment / "logs" / "prepare.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(spec, indent=1))
    note = "configs validated, corpus built, offline model " + ("checked (--tiny)" if opts.tiny else "converted")
    rc = timing.run_phase(f"prepare {regime.experiment}", [PY, "-m", "src.study", "--prepare", str(path)], t, note=note,
                      log=path.parent / "prepare.log")
    if not rc:
        print(f"prepared {regime.experiment}: " + "; ".join(Path(spec["result"]).read_text().splitlines()),
              flush=True)
    return rc


# --------------------------------------------------------------------------------------------------------------
# the jobs: parallel child processes, each in its own process group (a time limit stops it and its children)


def thread_counts(jobs: list[Job], n_parallel: int, cores: int) -> dict[Job, int]:
    """CPU threads per job: the cores divided among the jobs running at once; when every job runs at once, by
    its regime's weight of its strategy (base_constrained on 16 cores: SPRI's three jobs 4 each, the others 1)."""
    if n_parallel < len(jobs):
        return {job: max(1, cores // n_parallel) for job in jobs}
    weights = {job: job.regime.weight(job.row.strategy) for job in jobs}
    total = sum(weights.values())
    return {job: max(1, cores * w // total) for job, w in weights.items()}


def log_of(job: Job, out: Path) -> Path:
    return out / job.regime.experiment / "logs" / f"{job.name}.log"


def run_jobs(todo: list[tuple[Job, list[str], Path]], out: Path, n_parallel: int,
             deadline: float | None = None) -> list[Job]:
    """Every job of ``todo`` (job, command, run dir), ``n_parallel`` at a time in order (the heaviest CPU weight
    first), each in its own process group; one line each as it ends (a failed one's log tail too). Jobs still going
    at ``deadline`` (perf_counter time) are stopped and the others not started. Returns those that did not finish."""
    from src.entry import timing

    threads = thread_counts([job for job, _, _ in todo], n_parallel, os.cpu_count() or 1)
    jobs = {timing.Child(job.title, tuple(cmd), log_of(job, out), threads[job]): (job, run_dir)
            for job, cmd, run_dir in sorted(todo, key=lambda item: -item[0].regime.weight(item[0].row.strategy))}
    ended = []

    def on_end(child: timing.Child, rc: int, seconds: float) -> None:
        ended.append(child)
        job, run_dir = jobs[child]
        print(f"[{len(ended)}/{len(jobs)}] {job_line(job, rc, seconds, run_dir)}", flush=True)
        if rc:
            print("    " + "\n    ".join(child.log.read_text(errors="replace").splitlines()[-15:]), flush=True)

    unfinished = timing.run_parallel(list(jobs), n_parallel, on_end, deadline, cwd=ROOT)
    return [jobs[child][0] for child in unfinished]


def job_line(job: Job, rc: int, seconds: float, run_dir: Path) -> str:
    """One line per finished job: where its time went, which weights it evaluated, and its test BLEU."""
    from src.entry.progress import fmt_seconds

    if rc:
        return f"{job.title}: FAILED (exit {rc}) after {fmt_seconds(seconds)}; see {run_dir.parent}/logs"
    return "; ".join([f"{job.title}: done in {fmt_seconds(seconds)}", *record_parts(run_dir)])


def record_parts(run_dir: Path) -> list[str]:
    """The run's records, read: upcycling (and its auto knob), training, selection, test BLEU."""
    from src.evaluation.records import TrainSummary, UpcyclingReport
    from src.utils.errors import UserError

    try:
        rep, summary = UpcyclingReport.read(run_dir), TrainSummary.read(run_dir)
    except UserError as e:
        return [str(e)]
    parts = []
    if rep and rep.upcycle_seconds is not None:
        knob = f", {rep.auto['knob']} {rep.auto['value']:.3f}" if rep.auto else ""
        parts.append(f"upcycling {rep.upcycle_seconds:.1f} s{knob}")
    if summary is None:
        return [*parts, "no train_summary.json"]
    cost, test = summary.cost, summary.results.get("test") or {}
    parts.append(f"training {cost.seconds or 0:.1f} s (" + " + ".join(f"{s.get('steps')}" for s in summary.stages)
                 + f" steps, {(cost.tokens or 0) / 1000:.1f}k target tokens)")
    parts.append(f"selected {summary.selection.get('label')}")
    if test.get("bleu") is not None:
        parts.append(f"test BLEU {test['bleu']:.2f} on {test.get('segments')} sentences")
    return parts


# --------------------------------------------------------------------------------------------------------------
# what each row's init costs: its init rebuilt and decoded (English at init)

# `src.evaluate at_init=true`: each test clip's English transcript, greedy, from the run's rebuilt init
INIT_EVAL = ("at_init=true", "eval.task=transcribe", "eval.greedy=true", "eval.splits=[test]",
             "eval.comet.model=null", "progress=false")


def init_cost_phase(out: Path, regimes: list[Regime], n_parallel: int, t, deadline: float | None = None) -> int:
    """Every finished job of a regime with `init_cost` whose init was not decoded yet: `src.evaluate
    at_init=true` (the init rebuilt and checked against its upcycling report, then English transcription of the
    test clips), ``n_parallel`` at a time; none started after ``deadline``. Returns the jobs that failed or were
    cut (their rows read n/a in the EN WER at init column)."""
    from src.entry import timing
    from src.evaluation.records import UpcyclingReport, init_wer

    todo = {}
    for job in study_jobs([r for r in regimes if r.init_cost]):
        run_dir = out / job.regime.experiment / job.name
        report = UpcyclingReport.read(run_dir) if (run_dir / "train_summary.json").is_file() else None
        if report is not None and (report.init_eval or {}).get("task") != "transcribe":
            cmd = (PY, "-m", "src.evaluate", f"run_dir={run_dir}", *INIT_EVAL,
                   f"hydra.run.dir={run_dir / 'init' / 'job'}")
            log = out / job.regime.experiment / "logs" / f"{job.name}.init.log"
            todo[timing.Child(f"init {job.title}", cmd, log, max(1, (os.cpu_count() or 1) // n_parallel))] = run_dir
    if not todo:
        return 0
    print(f"\n== init cost: {len(todo)} inits to decode, {n_parallel} at a time", flush=True)
    failed, start = [], time.perf_counter()

    def on_end(child: timing.Child, rc: int, seconds: float) -> None:
        report = UpcyclingReport.read(todo[child])
        wer = init_wer(report) if report else None
        print(f"{child.title}: " + (f"FAILED (exit {rc}); see {child.log}" if rc else
                                    f"{seconds:.0f} s, English WER at init {wer:.1f}" if wer is not None else
                                    f"{seconds:.0f} s, no English WER"), flush=True)
        if rc:
            failed.append(child)

    unfinished = timing.run_parallel(list(todo), n_parallel, on_end, deadline, cwd=ROOT)
    t.phases.append(timing.Phase("init cost", time.perf_counter() - start, int(bool(failed or unfinished)),
                             f"{len(todo)} inits rebuilt and decoded (English WER at init), {n_parallel} at a time"))
    return len(failed) + len(unfinished)


# --------------------------------------------------------------------------------------------------------------
# the reports: one per table of each regime, over the table's run dirs


def report_phases(out: Path, regimes: list[Regime], report_args: list[str], t) -> int:
    """Per regime and table: the report against dense with the table's family (``report_args``: src.report's
    other options, e.g. the equivalence margin), and the main table's README block; returns the failures."""
    from src.entry import timing

    failed = 0
    for regime in regimes:
        for table in regime.tables:
            runs = [d for job in study_jobs([regime]) if table in job.row.tables
                    and (d := out / regime.experiment / job.name).is_dir()]
            name, dest = report_dir(regime, table)
            if not runs:
                print(f"{name}: no run dirs yet, no table", flush=True)
                continue
            family = [arg for c in table_family(regime, table) for arg in ("--contrast", c)]
            failed += bool(timing.run_phase(name, [PY, "-m", "src.report", *map(str, runs), "--out", str(out / dest),
                                               *family, *report_args], t, note="comparison table, its family",
                                        log=out / regime.experiment / "logs" / f"{dest.name}.log"))
            if table == MAIN and (out / dest / "summary.md").is_file():
                write_readme_block(out / regime.experiment)
    return failed


def report_dir(regime: Regime, table: str) -> tuple[str, Path]:
    """(the report phase's name, its dir under the study's output dir)."""
    suffix = f"-{table}" if table else ""
    return f"report {regime.experiment}{suffix}", Path(regime.experiment) / f"report{suffix}"


def write_readme_block(regime_dir: Path) -> Path:
    """<regime>/readme.md: the regime's summary (the table vs dense, the primary family, the exploratory
    verdicts): what the README shows for the regime."""
    path = regime_dir / "readme.md"
    path.write_text((regime_dir / "report" / "summary.md").read_text().rstrip() + "\n")
    return path


def seed_timing(out: Path, regime: Regime, n_parallel: int) -> str:
    """Each seed's cost, from its jobs' status.json (a job's whole process: loading, upcycling, training,
    evaluation) and its inits' (the init cost phase): the summed wall time, and that sum over the jobs run at a
    time, what one seed takes when its jobs run back to back. A job resumed from a checkpoint counts its last
    process only."""
    from src.entry.progress import fmt_seconds
    from src.utils.status import job_status

    lines = [f"Each seed of {regime.experiment}, from its jobs' status.json (whole processes; a resumed job counts "
             "its last process only):", "", f"| seed | rows completed | jobs, summed | inits decoded, summed | "
             f"jobs + inits / {n_parallel} at a time |", "| --- | ---: | ---: | ---: | ---: |"]
    for seed in regime.seeds:
        dirs = [out / regime.experiment / job.name for job in study_jobs([regime]) if job.seed == seed]
        jobs = [st["seconds"] for d in dirs if (st := job_status(d)) and st.get("status") == "completed"]
        inits = [st["seconds"] for d in dirs if (st := job_status(d / "init" / "job"))
                 and st.get("status") == "completed"]
        lines.append(f"| {seed} | {len(jobs)} of {len(dirs)} | {fmt_seconds(sum(jobs))} | {fmt_seconds(sum(inits))} | "
                     f"{fmt_seconds((sum(jobs) + sum(inits)) / n_parallel)} |")
    return "\n".join(lines) + "\n"


def write_regime_timing(out: Path, regimes: list[Regime], md: str, n_parallel: int) -> None:
    """<regime>/timing.md (README block study-<regime>-timing): this invocation's phases, then each seed's cost."""
    from src.utils.atomic import write_text

    for regime in regimes:
        if (out / regime.experiment).is_dir():
            write_text(out / regime.experiment / "timing.md", md + "\n" + seed_timing(out, regime, n_parallel))


def tables_text(out: Path, regimes: list[Regime]) -> str:
    """Every table's summary.md that exists, under its dir's name."""
    parts = []
    for regime in regimes:
        for table in regime.tables:
            summary = out / report_dir(regime, table)[1] / "summary.md"
            if summary.is_file():
                parts.append(f"### {report_dir(regime, table)[1]}\n\n{summary.read_text().strip()}\n")
    return "\n".join(parts)


KEEP = ("train_summary.json", "upcycling_report.json", "metrics.jsonl", "status.json", "train.log",
        "eval/test/results.md", "eval/test/results.csv")


def export(out: Path, dest: Path, regimes: list[Regime]) -> None:
    """The small files into ``dest`` (a device machine's $OUT): per regime its reports and logs and each run's
    records and results (not its checkpoints), and the timing table; ``dest``'s old copies replaced."""
    for regime in regimes:
        src_dir, dst = out / regime.experiment, dest / regime.experiment
        if dst.exists():
            shutil.rmtree(dst)
        for d in (d for d in sorted(src_dir.iterdir()) if d.is_dir()) if src_dir.is_dir() else ():
            if d.name == "logs" or d.name.startswith("report"):
                shutil.copytree(d, dst / d.name)
            for rel in KEEP if (d / "config.yaml").is_file() else ():  # a run dir
                if (d / rel).is_file():
                    (dst / d.name).mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(d / rel, dst / d.name / Path(rel).name)
    for name in ("timing.md", "timing.json"):
        if (out / name).is_file():
            shutil.copyfile(out / name, dest / name)


# --------------------------------------------------------------------------------------------------------------
# the command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--regimes", default=",".join(DEFAULT_REGIMES), help=f"of {', '.join(REGIMES)}")
    ap.add_argument("--strategies", default=None, help="only these strategies' rows (a toy regime: the grid's "
                    f"strategies, default {','.join(TOY_STRATEGIES)})")
    ap.add_argument("--fractions", default=None, help="stage 1's shares of the toy grid's two-stage rows "
                    f"(default {','.join(map(str, TOY_FRACTIONS))})")
    ap.add_argument("--one-stage", default=None, help="toy grid strategies run in one stage only (their papers' "
                    f"schedule; default {','.join(TOY_ONE_STAGE)})")
    ap.add_argument("--seeds", default=None, help="in place of each regime's own (toy 1,2,3; base_constrained 1)")
    ap.add_argument("--stage1-lr", type=float, default=None, help="trainer.stage1_lr of the two-stage jobs")
    ap.add_argument("--equivalence-margin", type=float, default=None, metavar="M",
                    help="the report's margin: a contrast whose whole interval lies inside ±M reads 'equivalent'")
    ap.add_argument("--jobs", type=int, default=None, help="jobs in parallel (default: 3 per core, or all of a "
                    "GPU regime's)")
    ap.add_argument("--out", default="outputs/study")
    ap.add_argument("--cache", default=None, help="paths.cache_dir (default: $UPCYCLE_ST_CACHE, else .cache)")
    ap.add_argument("--time-limit", type=float, default=None, metavar="S", help="seconds for the whole study: "
                    "jobs still going near S are stopped, and the reports cover those that finished")
    ap.add_argument("--export", metavar="DIR", help="afterwards: reports, logs, records and results into DIR")
    ap.add_argument("--no-init-cost", action="store_true", help="skip the init cost phase (each real-weights row's "
                    "init rebuilt and decoded: EN WER at init); a later --report DIR runs it")
    ap.add_argument("--dry-run", action="store_true", help="print the families and the jobs' commands, run nothing")
    ap.add_argument("--tiny", action="store_true", help="every job at its regime's tiny shapes on the CPU")
    ap.add_argument("--readme", metavar="DIR", help="only update README.md's study blocks from DIR")
    ap.add_argument("--report", metavar="DIR", help="only (re)write DIR's reports from the jobs that finished")
    ap.add_argument("--prepare", metavar="SPEC", help=argparse.SUPPRESS)  # the preparation's child process
    ap.add_argument("overrides", nargs="*", help="Hydra overrides for every job (key=value)")
    return ap.parse_args(argv)


def plan(args: argparse.Namespace) -> list[Regime] | str:
    """The regimes as the options plan them, or what is wrong with the options."""
    names = args.regimes.split(",")
    unknown = sorted(set(names) - set(REGIMES))
    if unknown:
        return f"--regimes: unknown {unknown}; known: {list(REGIMES)}"

    def split(text: str | None, kind: type = str) -> list | None:
        return None if text is None else [kind(x) for x in text.split(",") if x]

    return [planned(REGIMES[name], split(args.strategies), split(args.fractions, float), split(args.one_stage),
                    split(args.seeds, int)) for name in names]


def options(args: argparse.Namespace) -> Options:
    cache = [f"paths.cache_dir={Path(args.cache).resolve()}"] if args.cache else []
    return Options((*cache, *args.overrides), args.tiny, args.stage1_lr)


def dry_run(regimes: list[Regime], out: Path, opts: Options) -> int:
    """Print each table's family and every job's command; run nothing."""
    families: dict[str, list[str]] = {}
    for regime in regimes:
        for table in regime.tables:
            head = ("primary family" if table == MAIN else f"{table} table's family") + " (Holm within it): "
            families.setdefault(head + "; ".join(table_family(regime, table)), []).append(regime.experiment)
    for line, names in families.items():
        print(f"{line}  [{', '.join(names)}]")
    for job in study_jobs(regimes):
        spec = job_command(job, out, opts, fresh=False)
        print(job.regime.experiment, job.name, " ".join(spec[0][1:]) if spec else "(done)")
    return 0


def report_only(out: Path, regimes: list[Regime], report_args: list[str], n_parallel: int = 1) -> int:
    """The phases after the jobs alone (the inits not decoded yet, the reports), over whatever jobs finished: a
    study cut short still gets its tables."""
    from src.entry import timing

    started = [r for r in regimes if (out / r.experiment).is_dir()]
    t = timing.Timing(command=f"python -m src.study --report {out}")
    failed = init_cost_phase(out, started, n_parallel, t) + report_phases(out, started, report_args, t)
    write_regime_timing(out, started, timing.timing_markdown(timing.stamp(t)), n_parallel)
    print(tables_text(out, regimes))
    return 1 if failed else 0


def run_study(args: argparse.Namespace, regimes: list[Regime], out: Path, command: str) -> int:
    """Preparation, the jobs, the reports, the timing table (and --export); 1 when anything did not finish."""
    from src.demo import default_jobs
    from src.entry import timing

    t_start, t = time.perf_counter(), timing.Timing(command=command)
    opts, jobs = options(args), study_jobs(regimes)
    todo = [(job, *spec) for job in jobs if (spec := job_command(job, out, opts)) is not None]
    if prepare_phases([r for r in regimes if any(job.regime == r for job, _, _ in todo)], jobs, out, opts, t):
        print(timing.finish(t, out))
        return 1
    n_parallel = args.jobs or (len(jobs) if all(r.all_at_once for r in regimes) else default_jobs(len(jobs)))
    print(f"{len(jobs)} jobs, {len(jobs) - len(todo)} already done, {len(todo)} to run, {n_parallel} at a time",
          flush=True)
    reserve = REPORT_RESERVE_S * sum(len(r.tables) for r in regimes)
    start = time.perf_counter()
    unfinished = run_jobs(todo, out, n_parallel, t_start + args.time_limit - reserve if args.time_limit else None)
    t.phases.append(timing.Phase("jobs", time.perf_counter() - start, int(bool(unfinished)),
                             f"{len(todo)} jobs ({len(unfinished)} not finished), {n_parallel} at a time"))
    failed = 0 if args.no_init_cost else init_cost_phase(out, regimes, n_parallel, t,
                                                          t_start + args.time_limit if args.time_limit else None)
    failed += report_phases(out, regimes, report_args(args), t)
    md = timing.finish(t, out)
    write_regime_timing(out, regimes, md, n_parallel)
    print("\n" + tables_text(out, regimes) + "\n" + md)
    if unfinished:
        print(f"{len(unfinished)} of {len(todo)} jobs did not finish: " + ", ".join(j.title for j in unfinished))
    if any(f"study-{r.experiment}" in README_BLOCKS for r in regimes):
        print(f"README: python -m src.study --readme {out}")
    if args.export:
        export(out, Path(args.export).resolve(), regimes)
    return 1 if unfinished or failed else 0


def report_args(args: argparse.Namespace) -> list[str]:
    return ["--equivalence-margin", str(args.equivalence_margin)] if args.equivalence_margin is not None else []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare:
        return prepare(Path(args.prepare))
    if args.readme:
        from src.entry import timing

        timing.update_readme(ROOT / "README.md", Path(args.readme), README_BLOCKS)
        return 0
    regimes = plan(args)
    if isinstance(regimes, str):
        print(f"error: {regimes}", file=sys.stderr)
        return 2
    if args.report:
        return report_only(Path(args.report), regimes, report_args(args), args.jobs or 1)
    out = Path(args.out).resolve()
    if args.dry_run:
        return dry_run(regimes, out, options(args))
    return run_study(args, regimes, out, "python -m src.study " + " ".join(argv if argv is not None else sys.argv[1:]))


if __name__ == "__main__":
    sys.exit(main())
