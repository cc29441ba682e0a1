"""The strategy comparison on the toy corpus, phase by phase and timed: `make demo` (or `python -m src.demo`).

    python -m src.demo [--experiment toy_demo] [--strategies dense,vanilla,random,drop,spri] [--seeds 1]
                       [--jobs N] [--out DIR] [-- extra Hydra overrides]
    python -m src.demo --readme DIR     # write DIR/timing.md into README.md's timing block

Phases, each a child process: the toy corpus and the dense toy models, one per seed (the pretrained model
is a seed too; cached under paths.cache_dir, a warm run reuses them), the sweep (a Hydra multirun whose
jobs run in parallel processes through the joblib launcher, the CPU threads divided between them: on
2 cores two one-thread jobs train ~1.6x faster together than one two-thread job), and the comparison
report. Prints and writes DIR/timing.{md,json}; exits non-zero when any phase or job failed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def default_jobs(n_jobs: int) -> int:
    """Parallel sweep jobs: every job at once, up to 3 per core. One-thread jobs sharing the cores all
    finish together, where one job per core leaves a tail (5 jobs on 2 cores: 3 rounds, the last one
    with a core idle). Measured on 2 cores: 4 one-thread jobs train at 1135 target tokens/s in all, 2 at
    1200, one two-thread job at 750."""
    return max(1, min(n_jobs, 3 * (os.cpu_count() or 1)))


def demo_phases(experiment: str, strategies: str, seeds: str, out: Path, jobs: int | None = None,
                overrides: list[str] | None = None) -> list[tuple[str, list[str], str, Path | None]]:
    """(name, command, note, the sweep dir whose jobs the console follows) of the phases before the report:
    corpus, one toy model per seed, the sweep."""
    py, n_seeds = sys.executable, len(seeds.split(","))
    n = len(strategies.split(",")) * n_seeds
    jobs = jobs or default_jobs(n)
    common = [f"experiment={experiment}", "progress=false", *(overrides or [])]
    return [
        ("toy corpus", [py, "-m", "src.summary", *common], "built, or reused from paths.cache_dir", None),
        # the model is a seed: one toy model per seed (pretraining seed = fine-tuning seed), in parallel
        ("dense toy model", [py, "-m", "src.pretrain", "-m", "+rebuild=false", *common, f"seed={seeds}",
                             "hydra/launcher=joblib", f"hydra.launcher.n_jobs={n_seeds}",
                             f"hydra.sweep.dir={out / '.pretrain'}"],
         f"{n_seeds} model(s), one per seed: pretrained, or reused from paths.cache_dir", out / ".pretrain"),
        # seed before upcycle: seed-major job order, so the first jobs of a seeds run are the one-seed demo
        ("sweep", [py, "-m", "src.train", "-m", *common, f"seed={seeds}", f"upcycle={strategies}",
                   "hydra/launcher=joblib", f"hydra.launcher.n_jobs={jobs}", f"hydra.sweep.dir={out}"],
         f"{n} jobs, {jobs} at a time, {max(1, (os.cpu_count() or 1) // jobs)} thread(s) each", out),
    ]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiment", default="toy_demo")
    ap.add_argument("--strategies", default="dense,vanilla,random,drop,spri")
    ap.add_argument("--seeds", default="1", help="comma-separated, e.g. 1,2,3")
    ap.add_argument("--jobs", type=int, default=None, help="sweep jobs run in parallel (default: all, <= 3 per core)")
    ap.add_argument("--out", default=None, help="sweep dir (default: outputs/demo/<date>)")
    ap.add_argument("--readme", metavar="DIR", help="only update README.md's timing table from DIR/timing.md")
    ap.add_argument("overrides", nargs="*", help="extra Hydra overrides for every job")
    args = ap.parse_args(argv)
    from src.entry import timing as tm

    if args.readme:
        tm.update_readme(ROOT / "README.md", Path(args.readme))
        return 0
    import datetime as dt

    out = Path(args.out or f"outputs/demo/{dt.datetime.now():%Y-%m-%d_%H-%M-%S}")
    t = tm.Timing(command="python -m src.demo " + " ".join(argv if argv is not None else sys.argv[1:]))
    failed = 0
    steps = demo_phases(args.experiment, args.strategies, args.seeds, out, args.jobs, args.overrides)
    for name, cmd, note, watch in steps:  # each phase's output in out/logs/, each job's in its own dir
        rc = tm.run_phase(name, cmd, t, note=note, log=out / "logs" / f"{name.replace(' ', '_')}.log", watch=watch)
        failed |= rc
        if rc and name != "sweep":  # the sweep's failed jobs are listed; the report still covers the rest
            break
    else:
        t.jobs = tm.collect_jobs(out)
        failed |= tm.report_phase("report", out, t, note="comparison tables and plots")
    md = tm.finish(t, out)
    print("\n" + md)
    print(f"timing: {out / 'timing.md'} (README: python -m src.demo --readme {out})")
    print(f"logs: {out / 'logs'} (each phase), {out}/<job>/train.log (each job's steps), {out / 'report'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
