"""The comparison as Markdown and CSV: the table (per-direction headline metric, per metric its average ± spread
(n) [interval] and Δ vs the baseline [interval], the per-direction evidence, selection and cost), the text above
it (what the columns and intervals are), and below it the provenance, the skipped runs, the primary contrasts
with their Holm-corrected verdicts, and the exploratory verdicts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from src.evaluation.comparison import Comparison, MetricCells, Row
from src.evaluation.contrasts import verdict
from src.evaluation.discovery import ScoredRun, Skipped
from src.evaluation.intervals import TEST_ONLY, UNPAIRED, UNPAIRED_TEST_ONLY, Interval, method_note
from src.evaluation.metrics import Metric, headline_metric
from src.evaluation.results import fmt
from src.utils.machine import machine_label

VERDICTS = "What the intervals allow"  # the heading the study's README blocks and tests look for
CONTRASTS = "Primary contrasts"


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


def _span(ci: Interval, digits: int, signed: bool = False) -> str:
    f = f"+.{digits}f" if signed else f".{digits}f"
    return f"[{ci.low:{f}}, {ci.high:{f}}]"


def average_cell(c: MetricCells, m: Metric) -> str:
    """`24.98 ± 0.95 (n=3) [23.20, 26.76]`; one seed: `28.50 (n=1) [...]`; what the interval leaves out."""
    if c.mean is None:
        return "n/a"
    text = f"{c.mean:.{m.digits}f}" + (f" ± {c.sd:.{m.digits}f}" if c.sd is not None else "") + f" (n={c.n})"
    if c.ci is not None:
        text += " " + _span(c.ci, m.digits)
    return text + (f" (CI: {c.ci_note})" if c.ci_note else "")


def delta_cell(c: MetricCells, m: Metric) -> str:
    """`-1.36 [-2.71, -0.02]`, `n.s.` where the interval covers 0, `unpaired` where the rows share no seed."""
    if c.delta is None:
        return "n/a"
    text = f"{c.delta:+.{m.digits}f}"
    if c.delta_ci is None:
        return text + " (no interval)"
    text += " " + _span(c.delta_ci, m.digits, signed=True) + ("" if c.delta_ci.excludes_zero else " n.s.")
    return text + (" unpaired" if c.delta_ci.kind in (UNPAIRED, UNPAIRED_TEST_ONLY) else "")


def _directions_cell(c: MetricCells) -> str:
    counts = c.directions_better_worse
    return "" if counts is None else f"{counts[0]}/{counts[1]} of {len(c.direction_deltas)}"


def table(cmp: Comparison, directions: list[str]) -> list[str]:
    lead, shown, base = headline_metric(), cmp.metrics_shown(), cmp.has_baseline
    head = ["method", "schedule", "seeds", *[f"en-{d}" for d in directions]]
    for m in shown:
        head.append(f"{m.label} avg ± sd (n) [95% CI]")
        head += [f"Δ {m.label} vs {cmp.baseline} [95% CI]"] if base else []
    head += [f"dirs +/− vs {cmp.baseline} (Holm)"] if base else []
    head += ["selection", "steps", "tokens", "wall min", "params active / total"]
    init = init_columns(cmp)
    head += [label for label, _ in init]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in cmp.rows:
        cells = [r.method, r.schedule or "n/a", str(len(r.runs)),
                 *[fmt(r.metrics[lead.name].per_direction.get(d), lead.digits - 1) for d in directions]]
        for m in shown:
            cells.append(average_cell(r.metrics[m.name], m))
            cells += [delta_cell(r.metrics[m.name], m) if not r.baseline else ""] if base else []
        cells += [_directions_cell(r.metrics[lead.name]) if not r.baseline else ""] if base else []
        params = "n/a" if r.cost.active_params is None and r.cost.total_params is None \
            else f"{_count(r.cost.active_params)} / {_count(r.cost.total_params)}"
        cells += [r.selection, fmt(r.cost.steps, 0), _count(r.cost.tokens), _minutes(r.cost.seconds), params]
        cells += [cell(r) for _, cell in init]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


INIT_NOTES = {"KL at init": "KL(dense || upcycled) per target token on held-out clips before training",
              "EN WER at init": "greedy English WER of the init on the test clips (the pretrained English it keeps)"}


def init_columns(cmp: Comparison) -> list[tuple[str, Callable[[Row], str]]]:
    """What each row's init cost before training, where some row records it: KL(dense || upcycled) per target
    token (the upcycling report; dense: nothing upcycled) and greedy English WER at init (`src.evaluate
    at_init=true`: the pretrained English the init keeps)."""
    columns = []
    if any(r.cost.init_kl is not None for r in cmp.rows):
        columns.append(("KL at init", lambda r: "n/a" if r.cost.init_kl is None else f"{r.cost.init_kl:.2g}"))
    if any(r.cost.init_wer is not None for r in cmp.rows):
        columns.append(("EN WER at init", lambda r: fmt(r.cost.init_wer, 1)))
    return columns


def caption(cmp: Comparison, directions: list[str]) -> str:
    lead = headline_metric()
    kinds = {c.kind for r in cmp.rows for cells in r.metrics.values() for c in (cells.ci, cells.delta_ci) if c}
    scope = f"per direction on {cmp.split}" if directions else f"on {cmp.split} (per direction: comparison.md)"
    if cmp.has_baseline:
        versus = (f"Δ: the mean difference from {cmp.baseline} over the seeds both ran (seed s against seed s; "
                  "`unpaired` where they share none); these Δs are exploratory (95%, not corrected for the "
                  f"table's many comparisons{'; the primary contrasts below are' if cmp.contrasts else ''}"
                  f"{' Holm-corrected' if cmp.contrasts else ''}). dirs +/−: directions whose own Δ interval "
                  f"(the same bootstrap) finds the row's {lead.label} better/worse, Holm across the directions. ")
    else:
        versus = f"No {cmp.baseline} run found: no Δs. "
    same = "the same rule for every row" if len({r.selection for r in cmp.rows}) == 1 \
        else "**not the same rule for every row**"
    return (f"{lead.label} {scope}, mean over seeds (one run per seed); rows are method x schedule (trainable "
            "groups per stage); avg ± sd (n): the average over directions, its mean and sample std over the n "
            "seeds. " + versus + method_note(kinds, cmp.cfg.resample, cmp.cfg.n_draws) + " n.s.: the Δ interval "
            f"covers 0. Selection: which weights were evaluated ({same}). Cost, mean over seeds: optimizer steps, "
            "target tokens trained on, wall minutes of the training stages, active / total parameters"
            + "".join(f"; {label}: {INIT_NOTES[label]}" for label, _ in init_columns(cmp))
            + "; n/a where a run dir does not record it.")


def provenance(cmp: Comparison, skipped: list[Skipped]) -> list[str]:
    """The pretrained model per seed, the machines, duplicate seeds and skipped runs."""
    runs: list[ScoredRun] = [r for row in cmp.rows for r in row.runs.values()]
    notes, models = [], defaultdict(set)
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
    dups = [p for row in cmp.rows for p in row.duplicates]
    if dups:
        notes.append("Left out, repeating a seed of their row: " + ", ".join(f"`{p}`" for p in dups) + ".")
    if skipped:
        notes.append(f"Skipped ({len(skipped)}): " + "; ".join(f"`{s.path}`: {s.reason}" for s in skipped) + ".")
    return notes


def contrast_section(cmp: Comparison) -> list[str]:
    """The primary family: each contrast's Δ, its interval at its Holm step's level, Holm's p and the verdict."""
    if not cmp.contrasts:
        return []
    lead = headline_metric()
    tested = [c for c in cmp.contrasts if not c.missing]
    lines = [f"{CONTRASTS} ({lead.label}; named before the numbers were read; Holm across the {len(tested)} tested, "
             f"family-wise α = 0.05; each interval at its Holm step's confidence, so it excludes 0 exactly when "
             f"the step rejects; margin of equivalence: {fmt(cmp.cfg.equivalence_margin, 2)}):", "",
             f"| contrast | Δ {lead.label} | interval (confidence) | seeds | p (Holm) | verdict |",
             "|---|---|---|---|---|---|"]
    for c in cmp.contrasts:
        if c.missing:
            lines.append(f"| {c.contrast} | n/a | | | | not tested: {c.missing} |")
            continue
        seeds = f"{c.ci.n} {'pairs' if c.ci.kind not in (UNPAIRED, UNPAIRED_TEST_ONLY) else 'unpaired'}"
        lines.append(f"| {c.contrast} | {c.delta:+.{lead.digits}f} | {_span(c.ci, lead.digits, True)} "
                     f"({c.ci.confidence:.1%}) | {seeds} | {c.p_holm:.3f} | {c.verdict} |")
    return lines


def verdict_lines(cmp: Comparison) -> list[str]:
    """One exploratory line per row and shown metric: its Δ vs the baseline, interval, seeds, what it allows."""
    lines = []
    for r in cmp.rows:
        for m in cmp.metrics_shown():
            c = r.metrics[m.name]
            if r.baseline or c.delta_ci is None or c.delta is None:
                continue
            ci = c.delta_ci
            said = verdict(c.delta, ci, ci.excludes_zero, m.higher_is_better, m.digits, cmp.cfg.equivalence_margin)
            said = {"better": f"better than {cmp.baseline}", "worse": f"worse than {cmp.baseline}"}.get(said, said)
            pairs = f"over {ci.n} seed pair{'s' if ci.n != 1 else ''}" \
                if ci.kind not in (UNPAIRED, UNPAIRED_TEST_ONLY) else f"{ci.kind}, n={ci.n}"
            if ci.kind == TEST_ONLY:  # one seed: a claim about these two trained models, not the methods
                pairs += " (test set only: these models, not the methods)"
            lines.append(f"- {cmp.name(r)}: Δ {m.label} {c.delta:+.{m.digits}f} {_span(ci, m.digits, True)} "
                         f"{pairs}: {said}")
    return lines


def comparison_markdown(cmp: Comparison, skipped: list[Skipped], per_direction: bool = True) -> str:
    """The whole document: caption, table, provenance, primary contrasts, exploratory verdicts."""
    directions = cmp.directions if per_direction else []
    parts = [caption(cmp, directions), "\n".join(table(cmp, directions))]
    if notes := provenance(cmp, skipped):
        parts.append("\n".join(notes))
    if section := contrast_section(cmp):
        parts.append("\n".join(section))
    if found := verdict_lines(cmp):
        parts.append(f"{VERDICTS} (exploratory, vs {cmp.baseline}):\n" + "\n".join(found))
    return "\n\n".join(parts) + "\n"


def per_direction_markdown(cmp: Comparison) -> str:
    """Each row's Δ vs the baseline per direction with its interval; `*`: significant after Holm across the
    directions."""
    lead = headline_metric()
    rows = [r for r in cmp.rows if r.metrics[lead.name].direction_deltas]
    if not rows:
        return ""
    dirs = [d for d in cmp.directions if any(d in r.metrics[lead.name].direction_deltas for r in rows)]
    lines = [f"Δ {lead.label} vs {cmp.baseline} per direction, 95% interval from the same bootstrap; `*`: the "
             f"direction's Δ is significant after Holm across the {len(dirs)} directions.", "",
             "| row | " + " | ".join(f"en-{d}" for d in dirs) + " |", "|---|" + "---|" * len(dirs)]
    for r in rows:
        dd = r.metrics[lead.name].direction_deltas
        lines.append(f"| {cmp.name(r)} | " + " | ".join(
            f"{dd[d].delta:+.{lead.digits - 1}f}{'*' if dd[d].significant else ''} "
            f"{_span(dd[d].ci, lead.digits - 1, True)}" if d in dd else "n/a" for d in dirs) + " |")
    return "\n".join(lines) + "\n"


def csv_rows(cmp: Comparison) -> list[dict]:
    """One flat dict per row for comparison.csv."""
    out = []
    for r in cmp.rows:
        row = {"method": r.method, "schedule": r.schedule, "schedule_key": r.schedule_key, "seeds": len(r.runs),
               "seed_list": " ".join(map(str, r.seeds)), "baseline": r.baseline}
        for name, c in r.metrics.items():
            row.update({f"{name}_{d}": v for d, v in c.per_direction.items()})
            row.update({f"{name}_avg": c.mean, f"{name}_sd": c.sd, f"{name}_n": c.n, f"{name}_delta": c.delta})
            for key, ci in (("ci", c.ci), ("delta_ci", c.delta_ci)):
                row.update({f"{name}_{key}_low": ci and ci.low, f"{name}_{key}_high": ci and ci.high,
                            f"{name}_{key}_p": ci and ci.p, f"{name}_{key}_kind": ci and ci.kind})
            counts = c.directions_better_worse
            row.update({f"{name}_ci_note": c.ci_note, f"{name}_dirs_better": counts and counts[0],
                        f"{name}_dirs_worse": counts and counts[1]})
        row.update({"selection": r.selection, **vars(r.cost)})
        out.append(row)
    return out
