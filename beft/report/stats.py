"""Statistics of the report (docs/experiments.md §8): mean, population and sample std over seeds, a t-interval over
seeds, two-sided paired t-tests by seed, and Holm's correction across several tests."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95  # the level of the interval over seeds


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std (ddof=0), which reproduces the paper's Table 7 (0.44 from its five values)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=0))


def sample_std(values: Sequence[float]) -> float | None:
    """The sample std (ddof=1); None for fewer than 2 values."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The t-distribution confidence interval of the mean over seeds (n - 1 degrees of freedom); None for n < 2."""
    if len(values) < 2:
        return None
    arr = np.asarray(values, dtype=float)
    sem = float(stats.sem(arr))
    if sem == 0:  # equal values: the interval is the point
        return float(arr.mean()), float(arr.mean())
    low, high = stats.t.interval(confidence, len(arr) - 1, loc=arr.mean(), scale=sem)
    return float(low), float(high)


def describe(values: Sequence[float]) -> dict[str, float | int | None]:
    """n, mean, population std, sample std and the 95 % t-interval of a cell's values over seeds."""
    if not len(values):
        return {"n": 0, "mean": None, "std_pop": None, "std_sample": None, "ci_low": None, "ci_high": None}
    mean, std = mean_std(values)
    ci = t_interval(values)
    return {"n": len(values), "mean": mean, "std_pop": std, "std_sample": sample_std(values),
            "ci_low": None if ci is None else ci[0], "ci_high": None if ci is None else ci[1]}  # fmt: skip


def paired_ttest(a: Mapping[int, float], b: Mapping[int, float]) -> dict[str, float | int | None]:
    """``scipy.stats.ttest_rel`` over the seeds both have (Appendix C.2). p is None with fewer than 2 pairs."""
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return {"n": len(seeds), "t": None, "p": None}
    diff = np.array([a[s] - b[s] for s in seeds])
    if np.all(diff == diff[0]):  # constant differences: t is +-inf, p -> 0 (all zero: no difference, p = 1)
        if diff[0] == 0:
            return {"n": len(seeds), "t": 0.0, "p": 1.0}
        return {"n": len(seeds), "t": math.copysign(math.inf, diff[0]), "p": 0.0}
    result = stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds])
    return {"n": len(seeds), "t": float(result.statistic), "p": float(result.pvalue)}


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order (statsmodels' ``holm``)."""
    m = len(p_values)
    order = np.argsort(p_values, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()
