"""Task metrics computed offline (``evaluate`` fetches its scripts from the hub), as EXPERIMENTS.md 3.4 defines them.

Values are on a 0-1 scale in records (the paper prints them x100).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats
from sklearn import metrics as skm


def _classes(predictions: np.ndarray) -> np.ndarray:
    return predictions.argmax(axis=-1) if predictions.ndim > 1 else predictions


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    return float(skm.accuracy_score(labels, _classes(predictions)))


def f1(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Binary F1 of the positive class (label 1): QQP, MRPC."""
    return float(skm.f1_score(labels, _classes(predictions), pos_label=1, average="binary", zero_division=0))


def f1_macro(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Macro-F1 over every class of the task (CB: 3 classes), classes never predicted counting 0."""
    num_classes = predictions.shape[-1] if predictions.ndim > 1 else int(max(labels.max(), predictions.max())) + 1
    return float(
        skm.f1_score(labels, _classes(predictions), labels=list(range(num_classes)), average="macro", zero_division=0)
    )


def mcc(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Matthews correlation (CoLA); 0 for a constant predictor."""
    return float(skm.matthews_corrcoef(labels, _classes(predictions)))


def _correlation(fn, predictions: np.ndarray, labels: np.ndarray) -> float:
    """A correlation of regression outputs with gold scores; 0 when either side is constant (it is undefined)."""
    scores = predictions.reshape(-1)
    if np.ptp(scores) == 0 or np.ptp(labels) == 0:
        return 0.0
    return float(fn(scores, labels).statistic)


def spearman(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Spearman rank correlation (STS-B's reported metric)."""
    return _correlation(stats.spearmanr, predictions, labels)


def pearson(predictions: np.ndarray, labels: np.ndarray) -> float:
    return _correlation(stats.pearsonr, predictions, labels)


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "f1_macro": f1_macro,
    "mcc": mcc,
    "spearman": spearman,
    "pearson": pearson,
}


def compute(names: list[str], predictions: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; valid: {sorted(METRICS)}")
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    return {name: METRICS[name](predictions, labels) for name in names}
