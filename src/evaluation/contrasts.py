"""Named contrasts and what their intervals allow.

A comparison's claims rest on a *primary family* of contrasts named before the numbers are read
(`python -m src.report --contrast "NAME=A vs B" ...`, each row `method/schedule_key`, e.g.
`spri/one_stage vs vanilla/one_stage`; `src.study` names its family per regime). Holm's step-down procedure
controls the family-wise error within it: the contrast of rank r (1 = the smallest p of m) is tested at
alpha / (m - r + 1), and its interval is printed at that level, so "the interval excludes 0" and "Holm
rejects" agree (except where the step-down already stopped at an earlier rank, which the verdict says). Every
other interval of the report (each row's Δ vs the baseline, per-direction Δs) is exploratory.

A verdict is `better` / `worse` (the interval excludes 0 after correction), `equivalent within ±m` (only with
an equivalence margin, and only when the whole interval lies inside it) or `inconclusive: the interval allows
x to y`: an interval that allows the effect either way is not evidence of no effect.
"""

from __future__ import annotations

from dataclasses import dataclass

from src.evaluation.intervals import CONFIDENCE, Interval
from src.utils.errors import UserError


@dataclass(frozen=True)
class RowRef:
    """A comparison row by method and schedule key (`spri/two_stage10`; `dense` alone: its only schedule)."""

    method: str
    schedule_key: str | None = None

    @classmethod
    def parse(cls, text: str) -> RowRef:
        method, _, key = text.strip().partition("/")
        if not method:
            raise UserError(f"contrast row {text!r}: write METHOD or METHOD/SCHEDULE (e.g. spri/one_stage)")
        return cls(method, key or None)

    def __str__(self) -> str:
        return self.method + (f"/{self.schedule_key}" if self.schedule_key else "")


@dataclass(frozen=True)
class Contrast:
    """a - b, by name."""

    name: str
    a: RowRef
    b: RowRef

    @classmethod
    def parse(cls, text: str) -> Contrast:
        """`NAME=A vs B` or `A vs B` (named after its rows)."""
        name, sep, body = text.partition("=")
        if not sep:
            name, body = "", text
        parts = body.split(" vs ")
        if len(parts) != 2:
            raise UserError(f"--contrast {text!r}: write 'NAME=A vs B', e.g. "
                            "\"SPRI's init=spri/one_stage vs vanilla/one_stage\"")
        a, b = RowRef.parse(parts[0]), RowRef.parse(parts[1])
        return cls(name.strip() or f"{a} vs {b}", a, b)

    def __str__(self) -> str:
        return f"{self.name} ({self.a} − {self.b})"


def holm(pvalues: list[float], alpha: float = 1 - CONFIDENCE) -> tuple[list[float], list[bool], list[float]]:
    """Holm's step-down over ``pvalues``: (adjusted p-values, rejected, the confidence level of each one's
    step, 1 - alpha / (m - r + 1) for rank r), in the input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, rejected, levels = [1.0] * m, [False] * m, [1 - alpha] * m
    running, going = 0.0, True
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
        levels[i] = 1 - alpha / (m - rank)
        going = going and pvalues[i] <= alpha / (m - rank)
        rejected[i] = going
    return adjusted, rejected, levels


def verdict(delta: float, ci: Interval, rejected: bool, higher_is_better: bool, digits: int = 2,
            margin: float | None = None) -> str:
    """What the interval allows (module docstring); ``rejected``: the test of 0 rejects (after correction)."""
    if rejected:
        return "better" if (delta > 0) == higher_is_better else "worse"
    if ci.low == ci.high == 0.0:  # every draw gives 0: the rows' outputs agree on every resampled sentence
        return "no difference on this test set (identical scores in every draw)"
    if margin is not None and -margin < ci.low and ci.high < margin:
        return f"equivalent within ±{margin:g}"
    allows = f"the interval allows {ci.low:+.{digits}f} to {ci.high:+.{digits}f}"
    if ci.excludes_zero:  # Holm's step-down stopped at an earlier, larger p: this one is not claimed either
        return f"inconclusive (Holm stopped at an earlier contrast): {allows}"
    return f"inconclusive: {allows}"
