"""Regime subsets: the reference's draw, deterministic, paired across targets, nested across regimes."""

from __future__ import annotations

import numpy as np
import pytest

from beft.data.regimes import subset_indices
from beft.errors import DataError


def test_matches_the_reference_draw():
    np.random.seed(3)
    expected = np.random.permutation(2490)[:300].tolist()  # the reference: first numpy call after seeding
    assert subset_indices(2490, 300, seed=3) == expected


def test_deterministic_and_seed_dependent():
    assert subset_indices(1000, 50, 0) == subset_indices(1000, 50, 0)
    assert subset_indices(1000, 50, 0) != subset_indices(1000, 50, 1)


def test_regimes_are_nested():
    low, medium, high = (subset_indices(67349, n, 0) for n in (1000, 5000, 11000))
    assert medium[:1000] == low and high[:5000] == medium


def test_all_regime_is_the_whole_split_permuted():
    idx = subset_indices(250, None, 0)
    assert sorted(idx) == list(range(250)) and idx != list(range(250))


@pytest.mark.parametrize("n", [0, 2491])
def test_impossible_size_is_rejected(n):
    with pytest.raises(DataError, match=f"num_train={n} must be between 1 and the training split's 2490 rows"):
        subset_indices(2490, n, 0)
