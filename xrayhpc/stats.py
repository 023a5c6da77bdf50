"""The intervals the report sets beside every accuracy: one run, several seeds, a paired difference.

With 18 or 36 test images one run's accuracy moves by a tenth between seeds; a number without its
interval invites reading noise as a finding.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of an accuracy: honest for 18 or 36 test images."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Summary:
    """Values over seeds: mean, standard deviation, range, and the 95% t-interval of the mean."""

    n: int
    mean: float
    sd: float
    low: float
    high: float
    lowest: float
    highest: float


def summary(values: list[float]) -> Summary:
    """Mean and spread of per-seed values; the interval is Student's t on n - 1 degrees of freedom."""
    from scipy.stats import t

    n = len(values)
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if n > 1 else 0.0
    half = t.ppf(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else math.inf
    return Summary(n, mean, sd, mean - half, mean + half, min(values), max(values))


def paired(a: dict[int, float], b: dict[int, float]) -> Summary | None:
    """a − b over the seeds both ran (a paired interval), or None with fewer than two in common."""
    common = sorted(set(a) & set(b))
    if len(common) < 2:
        return None
    return summary([a[s] - b[s] for s in common])


def welch(a: list[float], b: list[float]) -> Summary:
    """mean(a) − mean(b) of two unpaired samples, with Welch's 95% t-interval (Satterthwaite's degrees
    of freedom); sd is the difference's standard error, lowest and highest the mean. Where neither
    varies, the interval is the point."""
    from scipy.stats import t

    sa, sb = summary(a), summary(b)
    va, vb = sa.sd**2 / sa.n, sb.sd**2 / sb.n
    mean = sa.mean - sb.mean
    se = math.sqrt(va + vb)
    if se == 0:
        return Summary(sa.n + sb.n, mean, 0.0, mean, mean, mean, mean)
    df = (va + vb) ** 2 / ((va**2 / (sa.n - 1) if sa.n > 1 else 0) + (vb**2 / (sb.n - 1) if sb.n > 1 else 0))
    half = t.ppf(0.975, df) * se
    return Summary(sa.n + sb.n, mean, se, float(mean - half), float(mean + half), mean, mean)
