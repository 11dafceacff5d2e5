"""Paired tests on examples between two runs of the same seed, from their saved predictions (beft/predictions.py).

Accuracy: the exact McNemar test, a two-sided binomial test (``scipy.stats.binomtest``) on the examples exactly one
of the two runs gets right. F1, macro-F1, MCC, Spearman and Pearson: a paired bootstrap over examples (one seeded
numpy resampling of example indices, both runs resampled alike); p is twice the smaller share of resampled
differences on either side of 0 (add-one smoothed). The summary adjusts the p-values of all its tests with Holm's
method (``stats.holm``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from beft import predictions, records
from beft.report import names, stats

RESAMPLES = 2000  # bootstrap resamples per test
SEED = 0  # the bootstrap's random seed: the same predictions give the same p


def _f1_of(gold: np.ndarray, pred: np.ndarray, positive: int) -> np.ndarray:
    tp = ((pred == positive) & (gold == positive)).sum(-1)
    wrong = ((pred == positive) != (gold == positive)).sum(-1)  # false positives + false negatives
    denominator = 2 * tp + wrong
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


def f1(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Binary F1 of class 1 per row (rows = resamples), as ``beft.training.metrics.f1``."""
    return _f1_of(gold, pred, 1)


def f1_macro(gold: np.ndarray, pred: np.ndarray, classes: int | None = None) -> np.ndarray:
    classes = classes or int(max(gold.max(), pred.max())) + 1
    return np.mean([_f1_of(gold, pred, c) for c in range(classes)], axis=0)


def mcc(gold: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Matthews correlation per row, the multi-class form (sklearn's); 0 where it is undefined."""
    classes = int(max(gold.max(), pred.max())) + 1
    n = gold.shape[-1]
    correct = (gold == pred).sum(-1)
    true_k = np.stack([(gold == c).sum(-1) for c in range(classes)], -1)
    pred_k = np.stack([(pred == c).sum(-1) for c in range(classes)], -1)
    cov = correct * n - (true_k * pred_k).sum(-1)
    scale = np.sqrt((n**2 - (pred_k**2).sum(-1)).astype(float) * (n**2 - (true_k**2).sum(-1)))
    return np.where(scale > 0, cov / np.where(scale > 0, scale, 1.0), 0.0)


def pearson(gold: np.ndarray, scores: np.ndarray) -> np.ndarray:
    g = gold - gold.mean(-1, keepdims=True)
    s = scores - scores.mean(-1, keepdims=True)
    scale = np.sqrt((g**2).sum(-1) * (s**2).sum(-1))
    return np.where(scale > 0, (g * s).sum(-1) / np.where(scale > 0, scale, 1.0), 0.0)


def spearman(gold: np.ndarray, scores: np.ndarray) -> np.ndarray:
    return pearson(scipy_stats.rankdata(gold, axis=-1), scipy_stats.rankdata(scores, axis=-1))


BOOTSTRAP: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "f1": f1, "f1_macro": f1_macro, "mcc": mcc, "spearman": spearman, "pearson": pearson,
}  # fmt: skip
REGRESSION = {"spearman", "pearson"}  # tested on the regression score, not a class


def mcnemar(gold: Sequence, a: Sequence, b: Sequence) -> dict[str, Any]:
    """Exact McNemar test of two runs' accuracies on the same examples; delta = accuracy(a) - accuracy(b)."""
    gold, a, b = np.asarray(gold), np.asarray(a), np.asarray(b)
    a_right, b_right = a == gold, b == gold
    only_a, only_b = int((a_right & ~b_right).sum()), int((b_right & ~a_right).sum())
    p = 1.0 if only_a + only_b == 0 else float(scipy_stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    return {"test": "McNemar (exact)", "n": len(gold), "delta": float(a_right.mean() - b_right.mean()), "p": p,
            "discordant": f"{only_a}/{only_b}"}  # fmt: skip


def bootstrap(metric: str, gold: Sequence, a: Sequence, b: Sequence, resamples: int = RESAMPLES,
              seed: int = SEED) -> dict[str, Any]:  # fmt: skip
    """Paired bootstrap of metric(a) - metric(b) over examples; p two-sided from the resampled differences."""
    fn = BOOTSTRAP[metric]
    dtype = float if metric in REGRESSION else int
    gold, a, b = (np.asarray(x, dtype=dtype) for x in (gold, a, b))
    delta = float(fn(gold, a) - fn(gold, b))
    index = np.random.default_rng(seed).integers(0, len(gold), size=(resamples, len(gold)))
    diffs = fn(gold[index], a[index]) - fn(gold[index], b[index])
    below, above = (diffs <= 0).sum() + 1, (diffs >= 0).sum() + 1
    p = min(1.0, 2 * min(below, above) / (resamples + 1))
    return {"test": f"paired bootstrap ({resamples})", "n": len(gold), "delta": delta, "p": float(p),
            "discordant": ""}  # fmt: skip


def compare(metric: str, rows_a: list[dict], rows_b: list[dict]) -> dict[str, Any] | None:
    """The test of ``metric`` between two runs' prediction rows, on the examples both have (matched by id);
    None for a metric with no paired test here (generated answers)."""
    if metric != "accuracy" and metric not in BOOTSTRAP:
        return None
    by_id = {row["id"]: row for row in rows_b}
    pairs = [(row, by_id[row["id"]]) for row in rows_a if row["id"] in by_id]
    if not pairs:
        return None
    key = "score" if metric in REGRESSION else "prediction"
    gold = [ra["gold"] for ra, _ in pairs]
    a = [ra.get(key, ra["prediction"]) for ra, _ in pairs]
    b = [rb.get(key, rb["prediction"]) for _, rb in pairs]
    return mcnemar(gold, a, b) if metric == "accuracy" else bootstrap(metric, gold, a, b)


PAIRS = (("v", "q"), ("q", "k"))  # the paper's comparisons (Appendix C.2)


def example_tests(runs: pd.DataFrame) -> pd.DataFrame:
    """Per setting and seed whose b_v/b_q/b_k runs saved predictions: the test on examples of each pair in ``PAIRS``
    on the main score's split, and Holm's adjustment across every test of the table (``p_holm``)."""
    done = runs[(runs["status"] == records.COMPLETED) & (runs["method"] == "beft") & runs["bias"].isin(names.BIASES)]
    done = done[done["predictions"].map(lambda p: isinstance(p, dict) and bool(p))] if len(done) else done
    rows = []
    for (model, task, regime, seed), group in done.groupby(["model", "task", "regime", "seed"], sort=True):
        by = {run["bias"]: run for _, run in group.iterrows()}
        for first, second in PAIRS:
            if first in by and second in by:
                result = _test(by[first], by[second], task)
                if result is not None:
                    rows.append({"model": model, "task": task, "regime": regime, "seed": int(seed),
                                 "comparison": f"b_{first} vs b_{second}", **result})  # fmt: skip
    table = pd.DataFrame(rows)
    if len(table):
        table["p_holm"] = stats.holm(table["p"].tolist())
    return table


def _test(a: pd.Series, b: pd.Series, task: str) -> dict[str, Any] | None:
    """The test of two runs on the split and metric of the first's score (else the task's main metric)."""
    split, metric = a.get("score_split"), a.get("score_metric")
    if not (isinstance(split, str) and isinstance(metric, str)):
        split, metric = names.main_column(task).split("/")
    path_a, path_b = a["predictions"].get(split), (b["predictions"] or {}).get(split)
    if not path_a or not path_b:
        return None
    result = compare(metric, predictions.read(a["path"], path_a), predictions.read(b["path"], path_b))
    return None if result is None else {"split": split, "metric": metric, **result}
