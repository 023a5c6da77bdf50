"""Controls beside the study: what an accuracy is worth when random weights or file facts reach it.

A run with `weights = "none"` (a random-weight twin) or `backbone = "metadata"` (file facts only) is
a control. Per task the report says, in one computed sentence, what the study's best model gains
over the best control, with a 95% interval: paired over the seeds both ran where there are
several, else paired over the test images both saw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xrayhpc.schema import Metrics
from xrayhpc.stats import Summary, paired, summary, wilson


def role(exp: dict[str, Any]) -> str:
    """`study`, or which kind of control the run is."""
    if exp["backbone"] == "metadata":
        return "control: file facts"
    if exp["weights"] == "none":
        return "control: random weights"
    return "study"


@dataclass(frozen=True)
class Arm:
    """One configuration: a single run, or its runs over several seeds (their metrics.json records)."""

    label: str
    runs: list[Metrics]

    @property
    def role(self) -> str:
        return role(self.runs[0].experiment)

    @property
    def accuracy(self) -> float:
        return sum(r.test.accuracy for r in self.runs) / len(self.runs)

    def by_seed(self) -> dict[int, float]:
        return {r.experiment["seed"]: r.test.accuracy for r in self.runs}

    def interval(self) -> tuple[float, float]:
        if len(self.runs) == 1:
            return wilson(self.runs[0].test.correct, self.runs[0].test.count)
        s = summary(list(self.by_seed().values()))
        return max(0.0, s.low), min(1.0, s.high)


def gain(study: Arm, control: Arm) -> tuple[Summary | None, str]:
    """study − control in accuracy with its paired interval, and what it is paired over."""
    over_seeds = paired(study.by_seed(), control.by_seed())
    if len(study.runs) > 1 and over_seeds is not None:
        return over_seeds, f"paired over {over_seeds.n} seeds"
    a, b = study.runs[0].test, control.runs[0].test
    if (
        not a.labels
        or a.labels != b.labels
        or len(a.predictions) != len(a.labels)
        or len(b.predictions) != len(b.labels)
    ):
        return None, "no paired interval: the two were not scored on the same labelled test images"
    right = [[int(p == y) for p, y in zip(t.predictions, t.labels, strict=True)] for t in (a, b)]
    return summary([x - y for x, y in zip(*right, strict=True)]), f"paired over {len(right[0])} test images"


def sentence(title: str, arms: list[Arm]) -> str | None:
    """The task's one sentence: the best study model against the best control, or None without both."""
    studies = [a for a in arms if a.role == "study"]
    controls = [a for a in arms if a.role != "study"]
    if not studies or not controls:
        return None
    study = max(studies, key=lambda a: a.accuracy)
    control = max(controls, key=lambda a: a.accuracy)
    (lo, hi), (clo, chi) = study.interval(), control.interval()
    diff, basis = gain(study, control)
    text = (
        f"{title}: the study's best model, {study.label}, reaches {study.accuracy:.3f} ({lo:.2f}–{hi:.2f}); "
        f"the best control, {control.label} ({control.role.removeprefix('control: ')}), reaches "
        f"{control.accuracy:.3f} ({clo:.2f}–{chi:.2f}). "
    )
    if diff is None:
        return text + f"Gain {study.accuracy - control.accuracy:+.3f}; {basis}."
    text += f"Gain {diff.mean:+.3f}, 95% interval {diff.low:+.3f} to {diff.high:+.3f} ({basis}): "
    if diff.low > 0:
        return text + "the model does better than its best control."
    if diff.high < 0:
        return text + "the control does better than the model."
    return text + "the interval holds 0, so this accuracy does not show that the model learned more than the control."
