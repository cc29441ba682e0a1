"""Comparison across runs: strategies (and training schedules) x directions, mean and std over seeds,
delta vs dense, paired-bootstrap significance vs dense per seed pair (sacrebleu), what each number cost
(optimizer steps, target tokens, wall time, active / total parameters), and plots (headline-metric bars,
expert-usage heatmaps). Which metrics it compares, and which one leads (per-direction columns, bars,
significance; BLEU), is the metric registry's say (src.evaluation.metrics)."""

from __future__ import annotations

import csv
import json
import logging
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from src.data.languages import COVOST2_EN_XX
from src.evaluation.config import MetricsConfig
from src.evaluation.intervals import Bootstrap, Interval, SegmentStats, interval, method_note, run_segment_stats
from src.evaluation.metrics import Metric, compared_metrics, headline_metric
from src.evaluation.results import fmt, read_hypotheses, read_results
from src.utils.atomic import atomic_open, write_text
from src.utils.machine import machine_label
from src.utils.status import job_status

log = logging.getLogger(__name__)


@dataclass
class Run:
    path: Path
    strategy: str
    seed: int
    results: dict[str, dict]  # direction (and "average") -> row
    schedule: str | None = None  # "2 stages: residual+router -> all" (None: config.yaml has no trainer.stages)
    # What the run cost (None where an older run dir does not record it, never 0):
    steps: int | None = None  # optimizer steps, summed over the stages
    tokens: int | None = None  # target tokens trained on, all processes
    seconds: float | None = None  # wall time of the stages' step loops
    total_params: int | None = None
    active_params: int | None = None
    scoring: MetricsConfig = field(default_factory=MetricsConfig)  # how the run scored (its tokenizer overrides)
    machine: dict | None = None  # train_summary.json's record of the machine (src/utils/machine.py)
    model: str | None = None  # the pretrained model it started from (the toy model's cache dir, or its name)
    selection: str | None = None  # which weights were evaluated: "last", "best dev loss (...)", ...


def method_label(cfg) -> str:
    """The comparison row a run belongs to: its strategy plus the training-time methods it adds
    (`spri+dpsl`, `spri+sd_moe`; self-distillation is part of `cluster`, `+distill` elsewhere)."""
    def on(key: str) -> bool:
        return bool(OmegaConf.select(cfg, key, default=0) or 0)

    strategy = str(OmegaConf.select(cfg, "upcycle.strategy", default="dense"))
    extras = [name for name, key in (("distill", "moe.self_distill.coef"), ("dpsl", "moe.dpsl.coef"),
                                     ("sd_moe", "moe.sd_moe.rank"))
              if strategy != "dense" and on(key) and not (name == "distill" and strategy == "cluster")]
    return "+".join([strategy, *extras])


def schedule_label(cfg) -> str | None:
    """`1 stage: all`, `2 stages: residual+router 10% -> all`: each stage's trainable groups, in order (with
    the first stages' share of the steps when there are several, so a 10% and a 33% stage 1 are two rows)."""
    try:
        stages = OmegaConf.select(cfg, "trainer.stages", default=None)
        if not stages:
            return None
        steps = [st.get("steps", None) for st in stages]
        total = sum(steps) if all(isinstance(n, int) for n in steps) else None
        parts = []
        for i, st in enumerate(stages):
            groups = st.get("trainable", None)
            groups = [groups] if isinstance(groups, str) else list(groups or [])
            share = f" {round(100 * steps[i] / total)}%" if total and len(stages) > 1 and i < len(stages) - 1 else ""
            parts.append(("+".join(map(str, groups)) or "?") + share)
    except Exception as e:  # an unresolvable interpolation in a hand-edited config.yaml
        log.warning("trainer.stages unreadable (%s); schedule n/a", e)
        return None
    return f"{len(parts)} stage{'s' if len(parts) != 1 else ''}: " + " -> ".join(parts)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _stage_sum(stages: list, key: str) -> float | None:
    """The sum of `key` over the stages; None unless every stage records it (a partial sum would mislead)."""
    vals = [st.get(key) if isinstance(st, dict) else None for st in stages]
    if not vals or any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in vals):
        return None
    return sum(vals)


def run_record(summary: dict, cfg) -> dict:
    """What a run recorded about itself (its train_summary.json and config): how it scored, its machine, its
    pretrained model, its selection."""
    model = summary.get("model") if isinstance(summary.get("model"), dict) else {}
    selection = summary.get("selection") if isinstance(summary.get("selection"), dict) else {}
    tokenize = OmegaConf.select(cfg, "eval.bleu_tokenize", default=None)
    return {"scoring": MetricsConfig(bleu_tokenize=dict(tokenize or {})),
            "machine": summary.get("machine") if isinstance(summary.get("machine"), dict) else None,
            "model": model.get("label"), "selection": selection.get("label")}


def run_cost(run_dir: Path, summary: dict | None = None) -> dict:
    """steps / tokens / seconds from train_summary.json's stages (``summary``: it, already read), total /
    active parameters from upcycling_report.json; None for whatever is missing."""
    if summary is None:
        summary = _read_json(run_dir / "train_summary.json") or {}
    stages = summary.get("stages") if isinstance(summary.get("stages"), list) else []
    steps, tokens = _stage_sum(stages, "steps"), _stage_sum(stages, "tokens")
    report = _read_json(run_dir / "upcycling_report.json") or {}

    def count(v):
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    return {"steps": None if steps is None else int(steps), "tokens": None if tokens is None else int(tokens),
            "seconds": _stage_sum(stages, "seconds"), "total_params": count(report.get("total_parameters")),
            "active_params": count(report.get("active_parameters"))}


def find_runs(paths: list[str | Path], split: str) -> list[Run]:
    """Run dirs (or sweep dirs holding them) that have eval/<split>/results.csv."""
    runs = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        # hydra's own .hydra/config.yaml copies are not run dirs
        candidates = [p] if (p / "config.yaml").exists() else sorted(
            c.parent for c in p.rglob("config.yaml") if not any(part.startswith(".") for part in
                                                                 c.relative_to(p).parent.parts))
        for d in candidates:
            res = d / "eval" / split / "results.csv"
            status = job_status(d)
            if status is not None and status.get("status") != "completed":
                log.warning("%s: the job failed (%s); skipped", d, status.get("error", "no message"))
                continue
            if not res.exists():
                log.warning("%s: no %s results; skipped (run `python -m src.evaluate run_dir=%s`)", d, split, d)
                continue
            cfg = OmegaConf.load(d / "config.yaml")
            summary = _read_json(d / "train_summary.json") or {}
            runs.append(Run(d, method_label(cfg), int(cfg.get("seed", 0)),
                            {r["direction"]: r for r in read_results(res)}, schedule_label(cfg),
                            **run_cost(d, summary), **run_record(summary, cfg)))
    if not runs:
        raise FileNotFoundError(f"no run with eval/{split}/results.csv under {', '.join(map(str, paths))}")
    return runs


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)  # one seed: no spread


def paired_bootstrap(base: Run, system: Run, split: str, n_samples: int = 1000) -> dict[str, float]:
    """Per direction: sacrebleu's paired-bootstrap p-value of system vs base on the headline metric (BLEU),
    same segments."""
    from sacrebleu.significance import PairedTest

    logging.getLogger("sacrebleu").setLevel(logging.WARNING)  # its per-test progress lines are noise here
    metric = headline_metric()
    out = {}
    base_rows, sys_rows = read_hypotheses(base.path / "eval" / split), read_hypotheses(system.path / "eval" / split)
    for lang in base_rows:
        if lang not in sys_rows:
            continue
        b = {r["id"]: r for r in base_rows[lang]}
        s = {r["id"]: r for r in sys_rows[lang]}
        ids = [i for i in b if i in s]
        if len(ids) < 2:
            continue
        refs = [b[i]["ref"] for i in ids]
        test = PairedTest([("baseline", [b[i]["hyp"] for i in ids]), ("system", [s[i]["hyp"] for i in ids])],
                          metrics={metric.label: metric.paired_metric(lang, base.scoring)}, references=[refs],
                          test_type="bs", n_samples=n_samples)
        _, results = test()
        out[lang] = float(results[metric.label][1].p_value)
    return out


def _by_seed(group: list[Run]) -> dict[int, Run]:
    """One run per seed (the first by path where a seed repeats)."""
    out: dict[int, Run] = {}
    for r in sorted(group, key=lambda r: str(r.path)):
        if r.seed in out:
            log.warning("%s and %s have the same strategy, schedule and seed %d; the comparison uses the first",
                        out[r.seed].path, r.path, r.seed)
            continue
        out[r.seed] = r
    return out


def significance(base: dict[int, Run], system: dict[int, Run], split: str, alpha: float = 0.05) -> dict:
    """Paired bootstrap vs the baseline for every seed both have (same seed in both): directions
    significantly better / worse (the headline metric's direction of better) summed over the seed pairs and
    per seed, and the p-values by seed."""
    metric = headline_metric()
    better = worse = 0
    per_seed, pvalues = [], {}
    for seed in sorted(set(base) & set(system)):
        pvals = paired_bootstrap(base[seed], system[seed], split)
        b = w = 0
        for d, p in pvals.items():
            sb = system[seed].results.get(d, {}).get(metric.name)
            bb = base[seed].results.get(d, {}).get(metric.name)
            if p < alpha and sb is not None and bb is not None:
                up, down = (sb > bb, sb < bb) if metric.higher_is_better else (sb < bb, sb > bb)
                b, w = b + up, w + down
        better, worse = better + b, worse + w
        per_seed.append(f"s{seed} {b}/{w}")
        pvalues[str(seed)] = {d: round(p, 4) for d, p in pvals.items()}
    if not pvalues:
        return {"sig_pairs": 0}
    return {"sig_pairs": len(pvalues), "sig_better": better, "sig_worse": worse, "sig_per_seed": ", ".join(per_seed),
            "p_values": json.dumps(pvalues)}


def compare(runs: list[Run], split: str, baseline: str = "dense", alpha: float = 0.05) -> tuple[list[dict], list[str]]:
    """One row per (strategy, training schedule): per compared metric (BLEU, COMET) the per-direction
    means, the average with its std over seeds and the delta vs the baseline; how many directions are
    significantly better / worse than it (per seed pair and summed), and the mean cost over seeds. The
    baseline is the `baseline` strategy's group (the one with most seeds if it ran under several
    schedules); without it there are no deltas."""
    groups: dict[tuple[str, str | None], list[Run]] = defaultdict(list)
    for r in runs:
        groups[(r.strategy, r.schedule)].append(r)
    directions = [d for d in COVOST2_EN_XX if any(d in r.results for r in runs)]
    candidates = [k for k in groups if k[0] == baseline]
    base_key = min(candidates, key=lambda k: (-len(groups[k]), k[1] or "")) if candidates else None
    base_runs = groups.get(base_key, [])
    seeded = {key: _by_seed(group) for key, group in groups.items()}  # one run per seed, chosen once
    base_seeds = seeded.get(base_key, {})
    rows = []
    for key, group in sorted(groups.items(), key=lambda kv: (kv[0] != base_key, kv[0][0], kv[0][1] or "")):
        strategy, schedule = key
        row: dict = {"strategy": strategy, "schedule": schedule, "seeds": len(group),
                     "seed_list": " ".join(str(r.seed) for r in sorted(group, key=lambda r: r.seed)),
                     "baseline": key == base_key}
        for metric in (m.name for m in compared_metrics()):
            for d in directions:
                row[f"{metric}_{d}"] = _mean_std([r.results.get(d, {}).get(metric) for r in group])[0]
            row[f"{metric}_avg"], row[f"{metric}_std"] = _mean_std([r.results["average"][metric] for r in group])
            row[f"{metric}_delta"] = paired_delta(base_seeds, seeded[key], metric)
        if base_runs and key != base_key:
            row.update(significance(base_seeds, seeded[key], split, alpha))
        for cost in ("steps", "tokens", "seconds", "active_params", "total_params"):
            row[cost] = _mean_std([getattr(r, cost) for r in group])[0]
        row["selection"] = " / ".join(sorted({r.selection or "n/a" for r in group}))
        rows.append(row)
    for metric in compared_metrics():
        add_intervals(rows, seeded, base_key, split, metric)
    return rows, directions


def paired_delta(base: dict[int, Run], own: dict[int, Run], metric: str) -> float | None:
    """Δ of the average: the mean of the per-seed differences over the seeds both ran (seed s against the
    baseline's seed s), or the difference of the means where they share no seed."""
    def avg(r: Run) -> float | None:
        return r.results["average"].get(metric)

    pairs = [avg(own[s]) - avg(base[s]) for s in sorted(set(base) & set(own))
             if avg(own[s]) is not None and avg(base[s]) is not None]
    if pairs:
        return statistics.fmean(pairs)
    b, g = _mean_std([avg(r) for r in base.values()])[0], _mean_std([avg(r) for r in own.values()])[0]
    return None if b is None or g is None else g - b


def add_intervals(rows: list[dict], seeded: dict, base_key, split: str, metric: Metric) -> None:
    """Each row's interval of its average (`<metric>_ci`) and of its Δ vs the baseline (`<metric>_delta_ci`,
    seeds paired; `<metric>_delta_sig`: the interval excludes 0), on the sentences every run shares
    (src/evaluation/intervals.py); `seeded`: each row's runs by seed. Rows whose runs lack the metric's
    segments get none."""
    stats: dict[Path, SegmentStats | None] = {r.path: run_segment_stats(r.path, split, metric, r.scoring)
                                              for by_seed in seeded.values() for r in by_seed.values()}
    have = [st for st in stats.values() if st is not None]
    if not have:
        return
    boot = Bootstrap(have, metric)
    if not boot.directions:
        return
    avg = {path: boot.averages(st) for path, st in stats.items() if st is not None}
    base = {seed: avg[r.path] for seed, r in seeded.get(base_key, {}).items() if r.path in avg}
    for row in rows:
        own = {seed: avg[r.path] for seed, r in seeded[(row["strategy"], row["schedule"])].items()
               if r.path in avg}
        if not own:
            continue
        if len(own) < row["seeds"]:
            log.warning("%s: %d of %d seeds have %s segments; its interval covers those only",
                        row_name(row, rows), len(own), row["seeds"], metric.label)
        ci = interval([p for p, _ in own.values()], [d for _, d in own.values()])
        row[f"{metric.name}_ci_low"], row[f"{metric.name}_ci_high"] = ci.low, ci.high
        row[f"{metric.name}_ci_seeds"] = len(own)
        shared = sorted(set(own) & set(base))
        if row["baseline"] or not shared:
            continue
        ci = interval([own[s][0] - base[s][0] for s in shared], [own[s][1] - base[s][1] for s in shared])
        row[f"{metric.name}_delta_ci_low"], row[f"{metric.name}_delta_ci_high"] = ci.low, ci.high
        row[f"{metric.name}_delta_sig"] = ci.excludes_zero
        row[f"{metric.name}_delta_pairs"] = len(shared)


def row_interval(row: dict, key: str) -> Interval | None:
    """The interval `add_intervals` stored under `key` (`bleu_ci`, `bleu_delta_ci`), or None."""
    low, high = row.get(f"{key}_low"), row.get(f"{key}_high")
    return None if low is None or high is None else Interval(low, high)


def _count(v: float | None) -> str:
    if v is None:
        return "n/a"
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= scale:
            return f"{v / scale:.1f}{suffix}"
    return f"{v:.0f}"


def _minutes(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    m = seconds / 60
    return f"{m:.1f}" if m >= 1 else f"{m:.2g}"  # a short run is not "0.0"


def _pm(mean: float | None, std: float | None, digits: int = 2) -> str:
    return "n/a" if mean is None else f"{mean:.{digits}f} ± {fmt(std, digits)}"


def _with_interval(text: str, ci: Interval | None, digits: int) -> str:
    return text if ci is None else f"{text} [{ci.low:.{digits}f}, {ci.high:.{digits}f}]"


def _delta_cell(r: dict, m: Metric) -> str:
    """Δ [interval], `n.s.` where the interval covers 0."""
    ci = row_interval(r, f"{m.name}_delta_ci")
    text = _with_interval(fmt(r[f"{m.name}_delta"], m.digits), ci, m.digits)
    return text + (" n.s." if ci is not None and not ci.excludes_zero else "")


def interval_seeds(rows: list[dict]) -> list[int]:
    """How many seeds each interval of the table used (an average's, a Δ's), for the method note."""
    return [r[k] for r in rows for m in compared_metrics()
            for k in (f"{m.name}_ci_seeds", f"{m.name}_delta_pairs") if r.get(k)]


def verdicts(rows: list[dict], baseline: str) -> list[str]:
    """One line per compared row and metric: its Δ, interval, seeds paired, and what the interval allows."""
    lines = []
    for r in rows:
        for m in compared_metrics():
            ci = row_interval(r, f"{m.name}_delta_ci")
            if r["baseline"] or ci is None:
                continue
            better = (ci.low > 0) == m.higher_is_better
            claim = (f"{'better' if better else 'worse'} than {baseline}" if ci.excludes_zero
                     else f"not significantly different from {baseline} (the interval covers 0)")
            seeds = r[f"{m.name}_delta_pairs"]
            lines.append(f"- {row_name(r, rows)}: Δ {m.label} {r[f'{m.name}_delta']:+.{m.digits}f} "
                         f"[{ci.low:+.{m.digits}f}, {ci.high:+.{m.digits}f}] over {seeds} seed pair"
                         f"{'s' if seeds != 1 else ''}: {claim}")
    return lines


def provenance(runs: list[Run]) -> list[str]:
    """Notes on where the rows come from: the pretrained model per seed, and every machine when they differ."""
    notes = []
    models = defaultdict(set)
    for r in runs:
        models[r.seed].add(r.model or "n/a")
    if any(m != {"n/a"} for m in models.values()):
        notes.append("Pretrained model per seed: " + "; ".join(
            f"seed {seed}: {', '.join(sorted(m))}" for seed, m in sorted(models.items())) + ".")
    mixed = sorted(seed for seed, m in models.items() if len(m) > 1)
    if mixed:
        notes.append(f"**Seed(s) {', '.join(map(str, mixed))} started from different pretrained models** (made by "
                     "different code or settings): their rows do not share a starting point.")
    machines = sorted({machine_label(r.machine) for r in runs if r.machine})
    if len(machines) > 1:
        notes.append(f"**The runs come from {len(machines)} different machines** ({'; '.join(machines)}): "
                     "CPU kernels differ in their last bits, so the same seed does not give the same numbers "
                     "across them.")
    elif machines:
        notes.append(f"Machine: {machines[0]}.")
    if any(r.machine is None for r in runs):
        notes.append("Some runs do not record their machine (older run dirs).")
    return notes


def comparison_markdown(rows: list[dict], directions: list[str], split: str, baseline: str,
                        runs: list[Run] | None = None) -> str:
    """The table, headline metric per direction first (one digit fewer: the table is wide), then per
    compared metric its average ± std [interval] and Δ [interval], then significance, selection and cost;
    the columns explained above it, the provenance and the verdicts below it."""
    has_base = any(r.get("baseline") for r in rows)
    head = _table_head(directions, baseline, has_base)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_table_cells(r, directions, has_base)) + " |" for r in rows]
    tail = provenance(runs or [])
    found = verdicts(rows, baseline)
    return (_caption(rows, directions, split, baseline, has_base) + "\n\n" + "\n".join(lines) + "\n"
            + ("\n" + "\n".join(tail) + "\n" if tail else "")
            + ("\nWhat the intervals allow:\n" + "\n".join(found) + "\n" if found else ""))


def _table_head(directions: list[str], baseline: str, has_base: bool) -> list[str]:
    lead = headline_metric()
    head = ["strategy", "schedule", "seeds", *[f"en-{d}" for d in directions]]
    for m in compared_metrics():
        delta = f"Δ vs {baseline} [95% CI]" if m is lead else f"Δ {m.label} [95% CI]"
        head += [f"{m.label} avg ± std [95% CI]"] + ([delta] if has_base else [])
    head += ["sig. +/−", "sig. +/− per seed"] if has_base else []
    return head + ["selection", "steps", "tokens", "wall min", "params active / total"]


def _table_cells(r: dict, directions: list[str], has_base: bool) -> list[str]:
    """One row of the table: per-direction headline metric, per metric avg [CI] and Δ [CI], significance, cost."""
    lead = headline_metric()
    other = has_base and not r["baseline"]
    if "sig_better" in r:
        sig, per_seed = f"{r['sig_better']}/{r['sig_worse']}", r["sig_per_seed"]
    else:
        sig = per_seed = "no shared seed" if other else ""
    params = "n/a" if r["active_params"] is None and r["total_params"] is None \
        else f"{_count(r['active_params'])} / {_count(r['total_params'])}"
    cells = [r["strategy"], r["schedule"] or "n/a", str(r["seeds"]),
             *[fmt(r[f"{lead.name}_{d}"], lead.digits - 1) for d in directions]]
    for m in compared_metrics():
        part = r.get(f"{m.name}_ci_seeds", r["seeds"]) < r["seeds"]
        cells += [_with_interval(_pm(r[f"{m.name}_avg"], r[f"{m.name}_std"], m.digits),
                                 row_interval(r, f"{m.name}_ci"), m.digits)
                  + (f" (CI: {r[f'{m.name}_ci_seeds']} seeds)" if part else "")]
        cells += [_delta_cell(r, m) if other else ""] if has_base else []
    cells += [sig, per_seed] if has_base else []
    return cells + [r["selection"], fmt(r["steps"], 0), _count(r["tokens"]), _minutes(r["seconds"]), params]


def _caption(rows: list[dict], directions: list[str], split: str, baseline: str, has_base: bool) -> str:
    """What the columns mean, the interval method and the selection rule (the text above the table)."""
    lead = headline_metric()
    if has_base:
        versus = (f"Δ: the mean difference from {baseline} over the seeds both ran (seed s against {baseline}'s "
                  "seed s; the difference of the means where they share none); sig. +/−: directions where "
                  f"sacrebleu's paired bootstrap (1000 samples, p<0.05) finds the row's {lead.label} better/worse "
                  f"than {baseline} on the same seed, summed over the seeds both ran (per seed in the next column). ")
    else:
        versus = f"No {baseline} run found: no deltas or significance. "
    same = "the same rule for every row" if len({r["selection"] for r in rows}) == 1 \
        else "**not the same rule for every row**"
    scope = f"per direction on {split}" if directions else f"on {split} (per direction: comparison.md)"
    return (f"{lead.label} {scope}, mean over seeds; rows are strategy x schedule (trainable groups "
            "per stage); avg ± std: the average over directions, mean and sample std over seeds. " + versus
            + method_note(interval_seeds(rows)) + " " + f"Selection: which weights were evaluated ({same}). "
            + "Cost, mean over seeds: optimizer steps, target tokens trained on, wall minutes of the training "
            "stages, active / total parameters; n/a where a run dir does not record it.")


def row_name(row: dict, rows: list[dict]) -> str:
    """The strategy, plus its schedule where the strategy ran under several."""
    several = sum(r["strategy"] == row["strategy"] for r in rows) > 1
    return f"{row['strategy']} ({row['schedule'] or 'n/a'})" if several else row["strategy"]


def plot_bars(rows: list[dict], directions: list[str], path: Path, metric: Metric) -> None:
    """The metric per direction and on average, one bar per row; the average's bar carries its 95% interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(directions) + 3), 4.5))
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        xs = [j + i * width for j in range(len(directions) + 1)]
        ys = [r[f"{metric.name}_{d}"] or 0.0 for d in directions] + [r[f"{metric.name}_avg"] or 0.0]
        ax.bar(xs, ys, width, label=row_name(r, rows))
        ci = row_interval(r, f"{metric.name}_ci")
        if ci is not None and r[f"{metric.name}_avg"] is not None:  # the average's 95% interval
            avg = r[f"{metric.name}_avg"]
            ax.errorbar(xs[-1], avg, yerr=[[max(0.0, avg - ci.low)], [max(0.0, ci.high - avg)]], fmt="none",
                        ecolor="black", capsize=3, linewidth=1)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(directions) + 1)])
    ax.set_xticklabels([f"en-{d}" for d in directions] + ["avg"], rotation=45, ha="right")
    ax.set_ylabel(metric.label)
    ax.legend(ncols=min(len(rows), 6), fontsize=8)
    ax.set_title(f"{metric.label} per direction by strategy")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, dpi=120, format="png")
    plt.close(fig)


def plot_deltas(rows: list[dict], path: Path, metric: Metric, baseline: str) -> bool:
    """Each row's Δ vs the baseline with its 95% interval (a forest plot: what the comparison's claims rest
    on); False when no row has an interval."""
    marked = [r for r in rows if row_interval(r, f"{metric.name}_delta_ci") is not None]
    if not marked:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.5 * len(marked) + 1.5))
    for y, r in enumerate(marked):
        ci, delta = row_interval(r, f"{metric.name}_delta_ci"), r[f"{metric.name}_delta"]
        color = "tab:gray" if not ci.excludes_zero else "tab:green" if (ci.low > 0) == metric.higher_is_better \
            else "tab:red"
        ax.errorbar(delta, y, xerr=[[max(0.0, delta - ci.low)], [max(0.0, ci.high - delta)]], fmt="o",
                    color=color, capsize=4)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(marked)))
    ax.set_yticklabels([f"{row_name(r, rows)} (n={r[f'{metric.name}_delta_pairs']})" for r in marked])
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ {metric.label} vs {baseline}, 95% interval (gray: covers 0)")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, dpi=120, format="png")
    plt.close(fig)
    return True


def plot_expert_usage(routing: dict, path: Path, title: str) -> None:
    """One heatmap per MoE layer: directions (rows) x experts (columns), share of assignments."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(routing)
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers) + 1, 0.35 * 16 + 1.5), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        langs = [d for d in COVOST2_EN_XX if d in routing[layer]] + [d for d in routing[layer] if d == "en"]
        data = [routing[layer][d] for d in langs]
        im = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0.0)
        ax.set_title(layer, fontsize=9)
        ax.set_yticks(range(len(langs)))
        ax.set_yticklabels(langs, fontsize=7)
        ax.set_xlabel("expert")
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, dpi=110, format="png")
    plt.close(fig)


def build_report(paths: list[str | Path], out_dir: Path, split: str = "test", baseline: str = "dense") -> dict:
    """Write comparison.{md,csv}, summary.md (the same without per-direction columns, for READMEs),
    <headline metric>_delta.png (each Δ with its interval), <headline metric>_by_direction.png and
    expert_usage_<strategy>.png into out_dir (`<strategy>_<schedule>` where a strategy ran under several
    schedules)."""
    runs = find_runs(paths, split)
    rows, directions = compare(runs, split, baseline)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = comparison_markdown(rows, directions, split, baseline, runs)
    write_text(out_dir / "comparison.md", md)
    write_text(out_dir / "summary.md", comparison_markdown(rows, [], split, baseline, runs))  # no direction columns
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with atomic_open(out_dir / "comparison.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)
    lead = headline_metric()
    plots = [out_dir / f"{lead.name}_by_direction.png"]
    plot_bars(rows, directions, plots[0], lead)
    if plot_deltas(rows, out_dir / f"{lead.name}_delta.png", lead, baseline):
        plots.append(out_dir / f"{lead.name}_delta.png")
    for row in rows:
        group = [r for r in runs if (r.strategy, r.schedule) == (row["strategy"], row["schedule"])]
        run = min(group, key=lambda r: r.seed)
        routing_file = run.path / "eval" / split / "routing.json"
        if routing_file.exists():
            name = row_name(row, rows)
            plots.append(out_dir / f"expert_usage_{re.sub(r'[^A-Za-z0-9+]+', '_', name).strip('_')}.png")
            plot_expert_usage(json.loads(routing_file.read_text()), plots[-1], f"{name}: expert usage ({split})")
    files = [out_dir / "comparison.md", out_dir / "summary.md", out_dir / "comparison.csv", *plots]
    return {"markdown": md, "rows": rows, "files": files}
