"""Per-example predictions of a run: one gzip-compressed JSON-lines file per evaluation split, next to the record.

``predictions/<split>.jsonl.gz`` holds one object per evaluated example, in evaluation order:
``{"id": ..., "gold": ..., "prediction": ..., "probs": [...]}`` for classification (class probabilities in the
task's label order), ``"score"`` in place of ``probs`` for regression, ``"text"`` for generated answers. The record's
``predictions`` field maps each split to its file, relative to the run folder. ``write`` and ``read`` are the only
writer and reader.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import softmax

from beft import atomic
from beft.errors import BeftError

FOLDER = "predictions"
SUFFIX = ".jsonl.gz"


def path_for(split: str) -> str:
    """The file of a split, relative to the run folder."""
    return f"{FOLDER}/{split}{SUFFIX}"


def write(run_folder: str | Path, split: str, rows: list[dict[str, Any]]) -> str:
    """Write one split's rows atomically; returns the path to store in the record (relative to the run folder)."""
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    # mtime=0: the same predictions give the same bytes
    atomic.write_bytes(Path(run_folder) / path_for(split), gzip.compress(text.encode("utf-8"), mtime=0))
    return path_for(split)


def read(run_folder: str | Path, relative_path: str) -> list[dict[str, Any]]:
    """The rows of one predictions file (``relative_path`` as the record stores it)."""
    path = Path(run_folder) / relative_path
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            return [json.loads(line) for line in lines]
    except FileNotFoundError:
        raise BeftError(
            f"{path}: predictions file missing (the record lists it); rerun the run with force=true"
        ) from None
    except (OSError, EOFError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BeftError(f"{path}: unreadable predictions file ({err}); rerun the run with force=true") from None


def classification_rows(ids: Sequence[Any], logits: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    """An encoder head's logits: the predicted class and the class probabilities (softmax, the task's label order)."""
    probs = softmax(np.asarray(logits, dtype=np.float64), axis=-1)
    return [
        {"id": i, "gold": int(gold), "prediction": int(p.argmax()), "probs": [float(x) for x in p]}
        for i, p, gold in zip(ids, probs, np.asarray(labels), strict=True)
    ]


def regression_rows(ids: Sequence[Any], outputs: np.ndarray, labels: np.ndarray) -> list[dict[str, Any]]:
    """A regression head's output: the score is the prediction."""
    scores = np.asarray(outputs, dtype=np.float64).reshape(len(ids))
    return [
        {"id": i, "gold": float(gold), "prediction": float(s), "score": float(s)}
        for i, s, gold in zip(ids, scores, np.asarray(labels), strict=True)
    ]


def candidate_rows(
    ids: Sequence[Any], scores: Sequence[Sequence[float]], gold_flags: Sequence[Sequence[int]]
) -> list[dict[str, Any]]:
    """A decoder's candidate scores per example: the chosen candidate's index (the first of the most likely, as the
    evaluation picks it) and the softmax of the scores. ``gold`` is the gold candidate's index, or the list of them
    where several candidates are gold (ReCoRD)."""
    rows = []
    for i, row_scores, flags in zip(ids, scores, gold_flags, strict=True):
        values = np.asarray(row_scores, dtype=np.float64)
        golds = [c for c, flag in enumerate(flags) if flag]
        rows.append(
            {
                "id": i,
                "gold": golds[0] if len(golds) == 1 else golds,
                "prediction": int(values.argmax()),
                "probs": [float(x) for x in softmax(values)],
            }
        )
    return rows


def generation_rows(ids: Sequence[Any], texts: Sequence[str], answers: Sequence[Sequence[str]]) -> list[dict[str, Any]]:
    """Generated answers: every gold answer, and the text (which is the prediction)."""
    return [
        {"id": i, "gold": list(golds), "prediction": text, "text": text}
        for i, text, golds in zip(ids, texts, answers, strict=True)
    ]


def example_ids(ds, positions: Sequence[int] | None = None) -> list[Any]:
    """Each evaluated example's id: the dataset's ``idx`` where the task has one, else its row index in the split
    (``positions``: the rows evaluated, in order; None = all of them)."""
    rows = list(range(len(ds))) if positions is None else [int(p) for p in positions]
    if "idx" not in ds.column_names:
        return rows
    ids = list(ds["idx"])  # one column read, not one row read per example
    return [ids[r] for r in rows]
