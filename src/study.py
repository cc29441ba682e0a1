"""The schedule study (`make study`, or `python -m src.study`): SPRI's init separated from its schedule.

    python -m src.study [--regimes toy_constrained,toy_demo] [--strategies dense,vanilla,drop,spri]
                        [--fractions 0.1,0.3333] [--one-stage drop] [--seeds 1,2,3] [--jobs N] [--out outputs/study]
                        [--stage1-lr LR] [--equivalence-margin M] [--dry-run]
    python -m src.study --readme DIR     # write DIR's tables into README.md's study blocks
    python -m src.study --report DIR     # (re)write DIR's reports and README blocks from its finished jobs

Per regime (`experiment=toy_demo`: compute-bound, 400 clips per direction; `experiment=toy_constrained`:
40 clips per direction, best dev loss), every MoE strategy under `trainer=one_stage` and under
`trainer=two_stage` with stage 1 taking each of `--fractions` of the same step budget, plus the dense
baseline; each seed its own toy model. One comparison table per regime (src.report, with intervals) and its
primary family of contrasts, named in advance (`study_family`; Holm within it, printed by --dry-run).
Strategies named by `--one-stage` (default: drop) run only as their papers train them (one stage): the
question is SPRI's init vs its schedule, which vanilla's two-stage runs answer (vanilla's init under SPRI's
schedule); drop's two-stage ablation would add 12 of the study's 60 jobs (48 by default) and answer nothing
the others do not.

Resumable: each job has a fixed run dir (<out>/<regime>/<strategy>-<schedule>-seed<N>); a job with a
train_summary.json is done and skipped, one with checkpoints resumes (trainer.resume=true), so a study
cut short (a session's end) continues where it stopped. Jobs run regime by regime (toy_constrained,
SPRI's claimed regime, first), seed by seed, so what finished first is a complete comparison. One line
per finished job on the console; each job's own output goes to <out>/<regime>/logs/<job>.log.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REGIMES = ("toy_constrained", "toy_demo")  # SPRI's claimed regime first: a study cut short has it
# Every job's optimizer-step budget, as the study ran (make demo's toy_demo runs 800 since issue 25, to fit its
# 14 minutes; the study's compute-bound regime stays what README's study tables measured).
STUDY_STEPS = 1200
# README blocks filled by --readme: one comparison per regime, and the study's timing.
README_BLOCKS = {"study-toy_demo": "toy_demo/readme.md", "study-toy_constrained": "toy_constrained/readme.md",
                 "study-timing": "timing.md"}
# The methods the family contrasts (the strategy under study and the init it is compared with) and the baseline.
SPRI, VANILLA, DENSE = "spri", "vanilla", "dense"


@dataclass(frozen=True)
class Job:
    regime: str
    strategy: str
    seed: int
    fraction: float | None = None  # stage 1's share under trainer=two_stage; None = trainer=one_stage

    @property
    def schedule(self) -> str:
        return "one_stage" if self.fraction is None else f"two_stage{round(100 * self.fraction)}"

    @property
    def name(self) -> str:
        return f"{self.strategy}-{self.schedule}-seed{self.seed}"

    def overrides(self, stage1_lr: float | None = None) -> list[str]:
        out = [f"experiment={self.regime}", f"upcycle={self.strategy}", f"seed={self.seed}",
               f"trainer.total_steps={STUDY_STEPS}"]
        if self.fraction is None:
            return [*out, "trainer=one_stage"]
        out += ["trainer=two_stage", f"trainer.stage1_fraction={self.fraction}"]
        return out + ([f"trainer.stage1_lr={stage1_lr}"] if stage1_lr is not None else [])


def study_jobs(regimes: list[str], strategies: list[str], fractions: list[float], seeds: list[int],
               one_stage: tuple[str, ...] = ()) -> list[Job]:
    """Regime-major, then seed: the first regime's comparison over every seed finishes first. Dense and the
    strategies in ``one_stage`` run in one stage only; the others also under each two-stage fraction."""
    jobs = []
    for regime in regimes:
        for seed in seeds:
            for strategy in strategies:
                jobs.append(Job(regime, strategy, seed))
                if strategy != "dense" and strategy not in one_stage:
                    jobs += [Job(regime, strategy, seed, f) for f in fractions]
    return jobs


def job_command(job: Job, out: Path, stage1_lr: float | None = None) -> tuple[list[str], Path] | None:
    """The job's command and run dir; None when it already finished (its train_summary.json exists)."""
    run_dir = out / job.regime / job.name
    if (run_dir / "train_summary.json").is_file():
        return None
    cmd = [sys.executable, "-m", "src.train", *job.overrides(stage1_lr), "progress=false",
           f"hydra.run.dir={run_dir}"]
    if (run_dir / "checkpoints").is_dir():
        cmd.append("trainer.resume=true")  # cut short: continue from its last checkpoint
    elif run_dir.exists():
        shutil.rmtree(run_dir)  # started but nothing saved: start again
    return cmd, run_dir


def run_job(job: Job, cmd: list[str], run_dir: Path, threads: int) -> tuple[int, float]:
    log = run_dir.parent / "logs" / f"{job.name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    with open(log, "a") as f:
        rc = subprocess.call(cmd, cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)
    return rc, time.perf_counter() - t0


def job_line(job: Job, rc: int, seconds: float, run_dir: Path) -> str:
    from src.entry.progress import fmt_seconds

    if rc:
        return f"{job.regime} {job.name}: FAILED (exit {rc}) after {fmt_seconds(seconds)}; see {run_dir.parent}/logs"
    bleu = ""
    results = run_dir / "eval" / "test" / "results.csv"
    if results.is_file():
        import csv

        rows = {r["direction"]: r for r in csv.DictReader(results.open())}
        avg = rows.get("avg") or rows.get("average")
        if avg and avg.get("bleu"):
            bleu = f", test BLEU {float(avg['bleu']):.2f}"
    return f"{job.regime} {job.name}: done in {fmt_seconds(seconds)}{bleu}"


def run_jobs(jobs: list[Job], out: Path, n_parallel: int, stage1_lr: float | None) -> int:
    """Every unfinished job, ``n_parallel`` at a time (threads divided among them); returns the failures."""
    todo = [(job, *spec) for job in jobs if (spec := job_command(job, out, stage1_lr)) is not None]
    print(f"{len(jobs)} jobs, {len(jobs) - len(todo)} already done, {len(todo)} to run, {n_parallel} at a time",
          flush=True)
    threads = max(1, (os.cpu_count() or 1) // n_parallel)
    failed = 0
    with ThreadPoolExecutor(max_workers=n_parallel) as pool:
        futures = {pool.submit(run_job, job, cmd, run_dir, threads): (job, run_dir) for job, cmd, run_dir in todo}
        for k, fut in enumerate(as_completed(futures), 1):
            job, run_dir = futures[fut]
            rc, seconds = fut.result()
            failed += bool(rc)
            print(f"[{k}/{len(todo)}] {job_line(job, rc, seconds, run_dir)}", flush=True)
    return failed


def study_family(strategies: list[str], fractions: list[float]) -> list[str]:
    """The primary family of every regime, named before any number is read (`src.report --contrast`, Holm within
    it): SPRI's init (SPRI vs vanilla, one stage each), SPRI's schedule (two stages vs one, per stage-1 share),
    the same schedule on vanilla's init, and each one-stage baseline vs dense (so the best of them is covered)."""
    family = [f"SPRI's init={SPRI}/one_stage vs {VANILLA}/one_stage"]
    for f in fractions:
        key, pct = Job("", "", 0, f).schedule, round(100 * f)
        family += [f"SPRI's schedule {pct}%={SPRI}/{key} vs {SPRI}/one_stage",
                   f"the schedule {pct}% on vanilla's init={VANILLA}/{key} vs {VANILLA}/one_stage"]
    family += [f"baseline {s} vs dense={s}/one_stage vs {DENSE}/one_stage" for s in strategies
               if s not in (DENSE, SPRI)]
    return family


def write_readme_block(regime_dir: Path) -> Path:
    """<regime>/readme.md: the regime's summary (the table vs dense, the primary family, the exploratory
    verdicts): what the README shows for the regime."""
    path = regime_dir / "readme.md"
    path.write_text((regime_dir / "report" / "summary.md").read_text().rstrip() + "\n")
    return path


def report_only(out: Path, regimes: list[str], report_args: list[str]) -> int:
    """The report phases alone, over whatever jobs finished (a study cut short still gets its tables)."""
    from src.entry import timing as tm

    failed = report_phases(out, [r for r in regimes if (out / r).is_dir()], report_args,
                           tm.Timing(command=f"python -m src.study --report {out}"))
    return 1 if failed else 0


def report_phases(out: Path, regimes: list[str], report_args: list[str], t) -> int:
    """Per regime: the report against dense with the primary family (``report_args``: src.report's --contrast and
    --equivalence-margin options), and the README block; returns the failures."""
    from src.entry import timing as tm

    failed = 0
    for regime in regimes:
        failed += tm.report_phase(f"report {regime}", out / regime, t, note="comparison table, primary family",
                                  extra=report_args)
        if (out / regime / "report" / "summary.md").is_file():
            write_readme_block(out / regime)
    return failed


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--regimes", default=",".join(REGIMES))
    ap.add_argument("--strategies", default="dense,vanilla,drop,spri")
    ap.add_argument("--fractions", default="0.1,0.3333", help="stage 1's shares under trainer=two_stage")
    ap.add_argument("--one-stage", default="drop", help="strategies run in one stage only (their papers' schedule)")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--stage1-lr", type=float, default=None, help="trainer.stage1_lr of the two-stage jobs")
    ap.add_argument("--equivalence-margin", type=float, default=None, metavar="M",
                    help="the report's margin: a contrast whose whole interval lies inside ±M reads 'equivalent'")
    ap.add_argument("--jobs", type=int, default=None, help="jobs in parallel (default: 3 per core)")
    ap.add_argument("--out", default="outputs/study")
    ap.add_argument("--dry-run", action="store_true", help="print the jobs and their commands, run nothing")
    ap.add_argument("--readme", metavar="DIR", help="only update README.md's study blocks from DIR")
    ap.add_argument("--report", metavar="DIR", help="only (re)write DIR's reports from the jobs that finished")
    return ap.parse_args(argv)


def dry_run(jobs: list[Job], family: list[str], out: Path, stage1_lr: float | None) -> int:
    """Print the primary family and every job's command; run nothing."""
    print("primary family (Holm within it): " + "; ".join(family))
    for job in jobs:
        spec = job_command(job, out, stage1_lr) if not (out / job.regime / job.name).exists() else None
        print(job.regime, job.name, " ".join(spec[0][1:]) if spec else "(done or started)")
    return 0


def family_args(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(the primary family, src.report's options that carry it and the equivalence margin)."""
    family = study_family(args.strategies.split(","), [float(f) for f in args.fractions.split(",") if f])
    report_args = [arg for c in family for arg in ("--contrast", c)]
    if args.equivalence_margin is not None:
        report_args += ["--equivalence-margin", str(args.equivalence_margin)]
    return family, report_args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from src.demo import default_jobs, demo_phases
    from src.entry import timing as tm

    if args.readme:
        tm.update_readme(ROOT / "README.md", Path(args.readme), README_BLOCKS)
        return 0
    family, report_args = family_args(args)
    if args.report:
        return report_only(Path(args.report), args.regimes.split(","), report_args)
    out = Path(args.out).resolve()
    regimes = args.regimes.split(",")
    unknown = sorted(set(regimes) - set(REGIMES))
    if unknown:
        print(f"error: --regimes: unknown {unknown}; known: {list(REGIMES)}", file=sys.stderr)
        return 2
    jobs = study_jobs(regimes, args.strategies.split(","), [float(f) for f in args.fractions.split(",") if f],
                      [int(s) for s in args.seeds.split(",")], tuple(filter(None, args.one_stage.split(","))))
    if args.dry_run:
        return dry_run(jobs, family, out, args.stage1_lr)
    t = tm.Timing(command="python -m src.study " + " ".join(argv if argv is not None else sys.argv[1:]))
    # the corpus and one toy model per seed, as the demo makes them (both regimes fine-tune the same models)
    for name, cmd, note, watch in demo_phases("toy_demo", "dense", args.seeds, out, 1)[:2]:
        if tm.run_phase(name, cmd, t, note=note, log=out / "logs" / f"{name.replace(' ', '_')}.log", watch=watch):
            print(tm.finish(t, out))
            return 1
    start = time.perf_counter()
    n_parallel = args.jobs or default_jobs(len(jobs))
    failed = run_jobs(jobs, out, n_parallel, args.stage1_lr)
    t.phases.append(tm.Phase("jobs", time.perf_counter() - start, int(bool(failed)),
                             f"{len(jobs)} jobs ({failed} failed), {n_parallel} at a time"))
    failed += report_phases(out, regimes, report_args, t)
    md = tm.finish(t, out)
    print("\n" + md)
    print(f"README: python -m src.study --readme {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
