"""Task metrics computed offline (``evaluate`` fetches its scripts from the hub), as docs/experiments.md §3.4 defines
them.

Values are on a 0-1 scale in records (the paper prints them x100).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

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


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {  # encoders: of the head's outputs
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


# --- generation (SQuAD, DROP): SQuAD v1.1's official answer normalisation, token F1 and exact match ------------------


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation and the articles a/an/the, collapse whitespace (SQuAD v1.1 evaluation script)."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def mean_over(fn: Callable[[str, str], float], predictions: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """The mean over examples of the best score against any gold answer (an example without answers scores 0)."""
    scores = [max((fn(p, a) for a in golds), default=0.0) for p, golds in zip(predictions, answers, strict=True)]
    return float(sum(scores) / len(scores)) if scores else 0.0


# What a decoder's evaluation computes (beft.training.decoder), by task kind: the accuracy of the most likely
# candidate, or SQuAD token F1 and exact match of the generated answer (docs/experiments.md §6.5).
DECODER_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy",),
    "multiple_choice": ("accuracy",),
    "generation": ("f1", "exact_match"),
}
