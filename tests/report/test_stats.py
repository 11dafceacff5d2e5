"""Means, population stds and paired t-test p-values equal hand computations (the paper's Tables 7 and 10)."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from beft.report import stats
from tests.report.conftest import COLA


def test_mean_population_std_and_ttest_match_hand_computation():
    assert stats.mean_std([93.1, 93.6, 93.6]) == pytest.approx((93.4333, 0.2357), abs=1e-4)  # Table 7 / Table 10
    assert stats.mean_std([93.1, 93.6, 93.6, 92.4, 93.2]) == pytest.approx((93.18, 0.44), abs=5e-3)  # Table 7 b_v
    v, q = dict(enumerate(COLA["v"])), dict(enumerate(COLA["q"]))
    d = [a - b for a, b in zip(COLA["v"], COLA["q"], strict=True)]
    t = (sum(d) / 3) / (pd.Series(d).std(ddof=1) / 3**0.5)
    expected_p = 2 * scipy_stats.t.sf(abs(t), df=2)
    result = stats.paired_ttest(v, q)
    assert result["n"] == 3 and result["t"] == pytest.approx(t) and result["p"] == pytest.approx(expected_p)
    assert stats.paired_ttest({0: 1.0}, {0: 2.0})["p"] is None  # one pair: no test


def test_sample_std_and_t_interval_match_hand_computation():
    values = [40.0, 44.0, 38.0]  # mean 40.667, sample std sqrt(28/3 / 2 * ... ) by hand below
    mean = sum(values) / 3
    sample = (sum((v - mean) ** 2 for v in values) / 2) ** 0.5
    assert stats.sample_std(values) == pytest.approx(sample) == pytest.approx(3.0551, abs=1e-4)
    half = scipy_stats.t.ppf(0.975, df=2) * sample / 3**0.5  # t_{0.975, 2} = 4.3027
    assert stats.t_interval(values) == pytest.approx((mean - half, mean + half))
    assert stats.t_interval(values)[1] - mean == pytest.approx(4.3027 * 3.0551 / 3**0.5, abs=1e-3)
    assert stats.sample_std([1.0]) is None and stats.t_interval([1.0]) is None
    assert stats.t_interval([2.0, 2.0]) == (2.0, 2.0)
    described = stats.describe(values)
    assert described["n"] == 3 and described["std_pop"] == pytest.approx(pd.Series(values).std(ddof=0))


def test_holm_matches_the_step_down_by_hand():
    # sorted 0.01, 0.02, 0.04, 0.30: x4, x3, x2, x1 = 0.04, 0.06, 0.08, 0.30, made monotone
    assert stats.holm([0.04, 0.01, 0.30, 0.02]) == pytest.approx([0.08, 0.04, 0.30, 0.06])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert stats.holm([0.01, 0.011]) == pytest.approx([0.02, 0.02])  # never below an earlier step
