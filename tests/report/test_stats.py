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
