"""Metrics against hand-computed values (docs/experiments.md §3.4)."""

from __future__ import annotations

import numpy as np
import pytest

from beft.training import metrics


def onehot(classes: list[int], n: int = 2) -> np.ndarray:
    return np.eye(n)[classes]


def test_accuracy_from_logits():
    assert metrics.accuracy(onehot([1, 0, 1, 1]), np.array([1, 0, 0, 1])) == 0.75


def test_binary_f1_of_positive_class():
    # tp=1, fp=1, fn=1 -> precision 1/2, recall 1/2, F1 1/2
    assert metrics.f1(onehot([1, 1, 0, 0]), np.array([1, 0, 1, 0])) == pytest.approx(0.5)
    # all-negative predictor: F1 0 (QQP medium b_k in Table 1)
    assert metrics.f1(onehot([0, 0, 0]), np.array([1, 0, 1])) == 0.0


def test_mcc():
    # tp=2, fp=1, tn=1, fn=0 -> (2*1 - 1*0) / sqrt(3*2*2*1)
    assert metrics.mcc(onehot([1, 1, 1, 0]), np.array([1, 1, 0, 0])) == pytest.approx(2 / np.sqrt(12))
    assert metrics.mcc(onehot([1, 1, 1]), np.array([1, 0, 1])) == 0.0


def test_macro_f1_over_all_classes():
    # class 0: F1 1; class 1: P 1/2, R 1 -> 2/3; class 2: P 1, R 1/2 -> 2/3
    assert metrics.f1_macro(onehot([0, 1, 1, 2], 3), np.array([0, 1, 2, 2])) == pytest.approx((1 + 4 / 3) / 3)
    # classes never predicted count as 0: class 0 F1 = 2*(1/3)*1/(4/3) = 1/2
    assert metrics.f1_macro(onehot([0, 0, 0], 3), np.array([0, 1, 2])) == pytest.approx(0.5 / 3)


def test_correlations():
    preds, gold = np.array([[1.0], [2.0], [3.0], [4.0]]), np.array([1.0, 3.0, 2.0, 4.0])
    assert metrics.spearman(preds, gold) == pytest.approx(1 - 6 * 2 / (4 * 15))  # sum d^2 = 2
    assert metrics.pearson(preds, gold) == pytest.approx(4 / 5)  # sum dxdy = 4, sum dx^2 = sum dy^2 = 5
    assert metrics.spearman(np.ones((4, 1)), gold) == 0.0  # a constant regressor


def test_compute_rejects_unknown_metric():
    with pytest.raises(ValueError, match="unknown metric.*'bleu'.*accuracy"):
        metrics.compute(["bleu"], onehot([1]), np.array([1]))
