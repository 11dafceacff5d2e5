"""Training subsets of a data regime, drawn exactly as the reference does (docs/experiments.md §3.1).

``numpy.random.RandomState(seed).permutation(N)[:n]``, in permutation order: the same rows for every bias target and
method of a seed (runs are paired), and nested across regimes (low in medium in high).
"""

from __future__ import annotations

import numpy as np

from beft.errors import DataError


def subset_indices(num_rows: int, num_train: int | None, seed: int) -> list[int]:
    """Row indices of the training subset; ``num_train=None`` = the whole split (still permuted, as the reference)."""
    n = num_rows if num_train is None else int(num_train)
    if n <= 0 or n > num_rows:
        raise DataError(f"data.num_train={num_train} must be between 1 and the training split's {num_rows} rows")
    return np.random.RandomState(seed).permutation(num_rows)[:n].tolist()
