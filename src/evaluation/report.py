"""Comparison across runs: strategies x directions, mean and std over seeds, delta vs dense,
paired-bootstrap significance vs dense (sacrebleu), and plots (BLEU bars, expert-usage heatmaps)."""

from __future__ import annotations

import csv
import json
import logging
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from src.data.languages import COVOST2_EN_XX
from src.evaluation.metrics import bleu_tokenizer
from src.evaluation.results import fmt, read_hypotheses, read_results

log = logging.getLogger(__name__)


@dataclass
class Run:
    path: Path
    strategy: str
    seed: int
    results: dict[str, dict]  # direction (and "average") -> row


def method_label(cfg) -> str:
    """The comparison row a run belongs to: its strategy plus the training-time methods it adds
    (`spri+dpsl`, `spri+sd`; self-distillation is part of `cluster`, `+distill` elsewhere)."""
    def on(key: str) -> bool:
        return bool(OmegaConf.select(cfg, key, default=0) or 0)

    strategy = str(OmegaConf.select(cfg, "upcycle.strategy", default="dense"))
    extras = [name for name, key in (("distill", "moe.self_distill.coef"), ("dpsl", "moe.dpsl.coef"),
                                     ("sd", "moe.sd.rank"))
              if strategy != "dense" and on(key) and not (name == "distill" and strategy == "cluster")]
    return "+".join([strategy, *extras])


def find_runs(paths: list[str | Path], split: str) -> list[Run]:
    """Run dirs (or sweep dirs holding them) that have eval/<split>/results.csv."""
    runs = []
    for p in map(Path, paths):
        if not p.exists():
            raise FileNotFoundError(f"{p} does not exist")
        candidates = [p] if (p / "config.yaml").exists() else sorted(c.parent for c in p.rglob("config.yaml"))
        for d in candidates:
            res = d / "eval" / split / "results.csv"
            if not res.exists():
                log.warning("%s: no %s results; skipped (run `python -m src.evaluate run_dir=%s`)", d, split, d)
                continue
            cfg = OmegaConf.load(d / "config.yaml")
            runs.append(Run(d, method_label(cfg), int(cfg.get("seed", 0)),
                            {r["direction"]: r for r in read_results(res)}))
    if not runs:
        raise FileNotFoundError(f"no run with eval/{split}/results.csv under {', '.join(map(str, paths))}")
    return runs


def _mean_std(values: list[float | None]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def paired_bootstrap(base: Run, system: Run, split: str, n_samples: int = 1000) -> dict[str, float]:
    """Per direction: sacrebleu's paired-bootstrap p-value of system vs base BLEU (same segments)."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

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
                          metrics={"BLEU": BLEU(tokenize=bleu_tokenizer(lang))}, references=[refs],
                          test_type="bs", n_samples=n_samples)
        _, results = test()
        out[lang] = float(results["BLEU"][1].p_value)
    return out


def compare(runs: list[Run], split: str, baseline: str = "dense", alpha: float = 0.05) -> tuple[list[dict], list[str]]:
    """One row per strategy: per-direction BLEU/COMET means, averages with std over seeds, deltas vs
    the baseline, and how many directions are significantly better / worse than it."""
    by_strategy: dict[str, list[Run]] = defaultdict(list)
    for r in runs:
        by_strategy[r.strategy].append(r)
    directions = [d for d in COVOST2_EN_XX if any(d in r.results for r in runs)]
    base_runs = by_strategy.get(baseline, [])
    rows = []
    for strategy, group in sorted(by_strategy.items(), key=lambda kv: (kv[0] != baseline, kv[0])):
        row: dict = {"strategy": strategy, "seeds": len(group)}
        for metric in ("bleu", "comet"):
            for d in directions:
                row[f"{metric}_{d}"] = _mean_std([r.results.get(d, {}).get(metric) for r in group])[0]
            row[f"{metric}_avg"], row[f"{metric}_std"] = _mean_std([r.results["average"][metric] for r in group])
            base_avg = _mean_std([r.results["average"][metric] for r in base_runs])[0]
            row[f"{metric}_delta"] = None if base_avg is None or row[f"{metric}_avg"] is None \
                else row[f"{metric}_avg"] - base_avg
        if base_runs and strategy != baseline:
            base = min(base_runs, key=lambda r: r.seed)
            system = next((r for r in group if r.seed == base.seed), group[0])
            pvals = paired_bootstrap(base, system, split)
            deltas = {d: system.results[d]["bleu"] - base.results[d]["bleu"] for d in pvals}
            row["sig_better"] = sum(1 for d, p in pvals.items() if p < alpha and deltas[d] > 0)
            row["sig_worse"] = sum(1 for d, p in pvals.items() if p < alpha and deltas[d] < 0)
            row["p_values"] = json.dumps({d: round(p, 4) for d, p in pvals.items()})
        rows.append(row)
    return rows, directions


def comparison_markdown(rows: list[dict], directions: list[str], split: str, baseline: str) -> str:
    head = ["strategy", "seeds", *[f"en-{d}" for d in directions], "BLEU avg", "± std", f"Δ vs {baseline}",
            "COMET avg", "Δ COMET", "sig. +/−"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        sig = f"{r['sig_better']}/{r['sig_worse']}" if "sig_better" in r else ""
        cells = [r["strategy"], str(r["seeds"]), *[fmt(r[f"bleu_{d}"], 1) for d in directions],
                 fmt(r["bleu_avg"]), fmt(r["bleu_std"]), fmt(r["bleu_delta"]) if r["strategy"] != baseline else "",
                 fmt(r["comet_avg"]), fmt(r["comet_delta"]) if r["strategy"] != baseline else "", sig]
        lines.append("| " + " | ".join(cells) + " |")
    return (f"BLEU per direction on {split} (mean over seeds); sig. +/−: directions where the paired bootstrap "
            f"(sacrebleu, 1000 samples, p<0.05, first seed) finds the strategy better/worse than {baseline}.\n\n"
            + "\n".join(lines) + "\n")


def plot_bleu_bars(rows: list[dict], directions: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(directions) + 3), 4.5))
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        xs = [j + i * width for j in range(len(directions) + 1)]
        ys = [r[f"bleu_{d}"] or 0.0 for d in directions] + [r["bleu_avg"] or 0.0]
        ax.bar(xs, ys, width, label=r["strategy"])
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(directions) + 1)])
    ax.set_xticklabels([f"en-{d}" for d in directions] + ["avg"], rotation=45, ha="right")
    ax.set_ylabel("BLEU")
    ax.legend(ncols=min(len(rows), 6), fontsize=8)
    ax.set_title("BLEU per direction by strategy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
    fig.savefig(path, dpi=110)
    plt.close(fig)


def build_report(paths: list[str | Path], out_dir: Path, split: str = "test", baseline: str = "dense") -> dict:
    """Write comparison.{md,csv}, bleu_by_direction.png and expert_usage_<strategy>.png into out_dir."""
    runs = find_runs(paths, split)
    rows, directions = compare(runs, split, baseline)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = comparison_markdown(rows, directions, split, baseline)
    (out_dir / "comparison.md").write_text(md)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(out_dir / "comparison.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, keys)
        w.writeheader()
        w.writerows(rows)
    plots = [out_dir / "bleu_by_direction.png"]
    plot_bleu_bars(rows, directions, plots[0])
    for strategy in sorted({r.strategy for r in runs}):
        run = min((r for r in runs if r.strategy == strategy), key=lambda r: r.seed)
        routing_file = run.path / "eval" / split / "routing.json"
        if routing_file.exists():
            plots.append(out_dir / f"expert_usage_{strategy}.png")
            plot_expert_usage(json.loads(routing_file.read_text()), plots[-1], f"{strategy}: expert usage ({split})")
    return {"markdown": md, "rows": rows, "files": [out_dir / "comparison.md", out_dir / "comparison.csv", *plots]}
