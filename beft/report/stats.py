"""Statistics of the paper (docs/experiments.md §8): mean and population std over seeds, two-sided paired t-tests by
seed."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std (ddof=0), which reproduces the paper's Table 7 (0.44 from its five values)."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=0))


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
