"""Training subsets of a data regime, drawn exactly as the reference does (docs/experiments.md §3.1).

``numpy.random.RandomState(seed).permutation(N)[:n]``, in permutation order: the same rows for every bias target and
method of a seed (runs are paired), and nested across regimes (low in medium in high).
"""

from __future__ import annotations

import numpy as np

from beft.errors import DataError


def subset_indices(num_rows: int, num_train: int | None, seed: int, setting: str = "data.num_train") -> list[int]:
    """Row indices of the training subset; ``num_train=None`` = the whole split (still permuted, as the reference)."""
    n = num_rows if num_train is None else int(num_train)
    if n <= 0 or n > num_rows:
        split = "training split" if setting == "data.num_train" else "split"
        raise DataError(f"{setting}={num_train} must be between 1 and the {split}'s {num_rows} rows")
    return np.random.RandomState(seed).permutation(num_rows)[:n].tolist()


def eval_indices(num_rows: int, num_eval: int | None, seed: int) -> list[int]:
    """Row indices of an evaluation subset of at most ``num_eval`` examples, drawn like the training subset
    (``RandomState(seed).permutation(N)[:num_eval]``, docs/experiments.md §6.2); ``None`` = every row (permuted)."""
    return subset_indices(num_rows, num_rows if num_eval is None else min(num_rows, num_eval), seed, "data.num_eval")
