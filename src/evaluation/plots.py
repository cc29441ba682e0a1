"""The comparison's pictures: the headline metric per direction (bars, the average's interval), each Δ vs the
baseline with its interval (a forest plot: what the claims rest on), and expert usage per direction."""

from __future__ import annotations

from pathlib import Path

from src.data.languages import COVOST2_EN_XX
from src.evaluation.comparison import Comparison
from src.evaluation.metrics import Metric
from src.utils.atomic import atomic_open


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path, dpi: int = 120) -> None:
    with atomic_open(path, "wb") as f:
        fig.savefig(f, dpi=dpi, format="png")
    _pyplot().close(fig)


def plot_bars(cmp: Comparison, path: Path, metric: Metric) -> None:
    """The metric per direction and on average, one bar per row; the average's bar carries its interval."""
    plt, directions = _pyplot(), cmp.directions
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(directions) + 3), 4.5))
    width = 0.8 / max(1, len(cmp.rows))
    for i, r in enumerate(cmp.rows):
        c = r.metrics[metric.name]
        xs = [j + i * width for j in range(len(directions) + 1)]
        ax.bar(xs, [c.per_direction.get(d) or 0.0 for d in directions] + [c.mean or 0.0], width, label=cmp.name(r))
        if c.ci is not None and c.mean is not None:
            ax.errorbar(xs[-1], c.mean, yerr=[[max(0.0, c.mean - c.ci.low)], [max(0.0, c.ci.high - c.mean)]],
                        fmt="none", ecolor="black", capsize=3, linewidth=1)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(directions) + 1)])
    ax.set_xticklabels([f"en-{d}" for d in directions] + ["avg"], rotation=45, ha="right")
    ax.set_ylabel(metric.label)
    ax.legend(ncols=min(len(cmp.rows), 6), fontsize=8)
    ax.set_title(f"{metric.label} per direction by method")
    fig.tight_layout()
    _save(fig, path)


def plot_deltas(cmp: Comparison, path: Path, metric: Metric) -> bool:
    """Each row's Δ vs the baseline with its 95% interval (gray: covers 0); False when no row has one."""
    marked = [r for r in cmp.rows if r.metrics[metric.name].delta_ci is not None]
    if not marked:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(marked) + 1.5))
    for y, r in enumerate(marked):
        c = r.metrics[metric.name]
        ci, delta = c.delta_ci, c.delta
        color = "tab:gray" if not ci.excludes_zero else "tab:green" if (ci.low > 0) == metric.higher_is_better \
            else "tab:red"
        ax.errorbar(delta, y, xerr=[[max(0.0, delta - ci.low)], [max(0.0, ci.high - delta)]], fmt="o",
                    color=color, capsize=4)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(marked)))
    ax.set_yticklabels([f"{cmp.name(r)} (n={r.metrics[metric.name].delta_ci.n})" for r in marked])
    ax.invert_yaxis()
    ax.set_xlabel(f"Δ {metric.label} vs {cmp.baseline}, 95% interval, exploratory (gray: covers 0)")
    fig.tight_layout()
    _save(fig, path)
    return True


def plot_expert_usage(routing: dict, path: Path, title: str) -> None:
    """One heatmap per MoE layer: directions (rows) x experts (columns), share of assignments."""
    plt = _pyplot()
    layers = list(routing)
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers) + 1, 0.35 * 16 + 1.5), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        langs = [d for d in COVOST2_EN_XX if d in routing[layer]] + [d for d in routing[layer] if d == "en"]
        im = ax.imshow([routing[layer][d] for d in langs], aspect="auto", cmap="viridis", vmin=0.0)
        ax.set_title(layer, fontsize=9)
        ax.set_yticks(range(len(langs)))
        ax.set_yticklabels(langs, fontsize=7)
        ax.set_xlabel("expert")
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.suptitle(title)
    fig.tight_layout()
    _save(fig, path, dpi=110)
