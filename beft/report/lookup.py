"""Finding the records a report needs: by their run coordinates (model, task, regime, label, seed), never by folder.

``run_table`` flattens every run record into one row (every final metric as a ``<split>/<metric>`` column);
``RunLookup`` finds the value of one paper cell and seed in it, or says why there is none. ``find_record`` picks the
record of given coordinates among records read with ``beft.records``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from beft import records
from beft.report import names
from beft.report.paper import BIAS_PEFT_METRICS, SCORE_METRICS

RECORD_COLUMNS = ["path", "model", "task", "regime", "method", "bias", "label", "seed", "variant", "status",
                  "params_percent", "params_permille", "bias_relative_percent", "bias_saving_percent", "bias_reshape",
                  "runtime_s", "score_metric", "score_split", "wall_s", "auto_chosen", "predictions",
                  "params_trainable"]  # fmt: skip
R = TypeVar("R", records.RunRecord, records.RankingRecord)


def run_table(results_dir: Path) -> pd.DataFrame:
    """One row per run record (completed or failed), with every final metric as ``<split>/<metric>``."""
    rows = [_row(folder, rec) for folder, rec in records.iter_runs(results_dir)]
    return pd.DataFrame(rows, columns=None if rows else RECORD_COLUMNS)


def _row(folder: Path, rec: records.RunRecord) -> dict[str, Any]:
    run, score = rec.run, rec.score
    row = {
        "path": str(folder), "model": run.model, "task": run.task, "regime": run.regime, "method": run.method,
        "bias": run.bias, "label": run.label, "seed": run.seed, "variant": run.variant, "status": rec.status,
        **_param_columns(rec.params),
        "runtime_s": rec.train_runtime_s,
        "score_metric": None if score is None else score.metric,
        "score_split": None if score is None else score.split,
        "wall_s": None if rec.time is None else rec.time["wall_s"],
        "auto_chosen": (auto_of(rec) or {}).get("chosen"),
        "predictions": rec.predictions,
    }  # fmt: skip
    if rec.final is not None:  # a failed run has no final metrics
        for split, values in rec.final.items():
            row.update({f"{split}/{metric}": value for metric, value in values.items()})
    return row


def auto_of(rec: records.RunRecord) -> dict[str, Any] | None:
    """A ``bias=auto`` run's ``auto`` field (the chosen bias, the scores, the ranking it used), None otherwise."""
    auto = getattr(rec, "auto", None)
    return auto if auto is not None else rec.extra.get("auto")


def _param_columns(params: dict[str, Any] | None) -> dict[str, Any]:
    """The parameter counts the paper's tables print (none for a run that failed before counting them)."""
    if params is None:
        return dict.fromkeys(["params_percent", "params_permille", "bias_relative_percent", "bias_saving_percent",
                              "bias_reshape", "params_trainable"])  # fmt: skip
    peft = params.get("bias_peft")  # bias PEFT methods only
    return {
        "params_percent": params["percent"],
        "params_trainable": params.get("trainable"),
        "params_permille": params.get("permille"),  # not in records of older versions: 10 x percent stands in
        "bias_relative_percent": None if peft is None else peft.get("relative_percent"),
        "bias_saving_percent": None if peft is None else peft.get("saving_percent"),
        "bias_reshape": None if peft is None else tuple(peft["reshape"][k] for k in "mnr"),
    }


def present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and pd.isna(value))


def paper_value(run: pd.Series, metric: str, split: str, method: str) -> float | None:
    """The paper's ``metric`` of one run (a ``run_table`` row), on the paper's scale (scores x100)."""
    if metric in SCORE_METRICS:
        value = run.get(f"{split}/{metric}")
        return 100.0 * float(value) if present(value) else None
    if metric == "params_permille":
        if present(run.get("params_permille")):
            return float(run["params_permille"])
        return 10.0 * float(run["params_percent"]) if present(run.get("params_percent")) else None
    if metric in ("params_percent", "runtime_s"):
        return float(run[metric]) if present(run.get(metric)) else None
    if metric in BIAS_PEFT_METRICS:
        return _bias_peft_value(run, metric, method)
    return None


def _bias_peft_value(run: pd.Series, metric: str, method: str) -> float | None:
    """Tables 4, 13, 14: a bias PEFT's parameters relative to the bias vector it replaces, and the saving."""
    if method == "beft":  # "Directly" (Table 4): the bias vector itself, d of d
        relative = 100.0
    elif present(run.get("bias_relative_percent")):
        relative = float(run["bias_relative_percent"])
    else:
        return None
    return {"params_relative_percent": relative, "params_relative_permille": 10.0 * relative,
            "params_saving_percent": 100.0 - relative}[metric]  # fmt: skip


def split_with(runs: pd.DataFrame, metric: str) -> str:
    """The evaluation split whose ``metric`` the runs report (tasks with one split: ``validation``)."""
    columns = [c for c in runs.columns if c.endswith(f"/{metric}") and runs[c].notna().any()]
    return columns[0].split("/")[0] if columns else "validation"


def main_column(group: pd.DataFrame, task: str) -> str | None:
    """The ``<split>/<metric>`` column of the runs' main score: the records' ``score`` (decoders: CB accuracy,
    SQuAD/DROP F1), else the task's main metric (conf/task)."""
    for split, metric in zip(group.get("score_split", []), group.get("score_metric", []), strict=True):
        column = f"{split}/{metric}"
        if present(split) and present(metric) and column in group and group[column].notna().any():
            return column
    column = names.main_column(task)
    return column if column in group and group[column].notna().any() else None


def record_metric(runs: pd.DataFrame, model: str, task: str | None) -> str:
    """The main metric the records of ``model`` on ``task`` report (``score.metric``), else accuracy."""
    found = runs[(runs["model"] == model) & (runs["task"] == task)]["score_metric"].dropna() if len(runs) else ()
    return str(next(iter(found), "accuracy"))


class RunLookup:
    """Finds the completed run (or says why there is none) for one paper cell and seed, among one model's runs in one
    regime; ``reshape`` (Table 14) admits only runs with that (m, n, r)."""

    def __init__(self, runs: pd.DataFrame, model: str, regime: str, reshape: tuple[int, int, int] | None):
        self.runs = runs[(runs["model"] == model) & (runs["regime"] == regime)] if len(runs) else runs
        self.model, self.regime, self.reshape = model, regime, reshape

    def value(self, task: str | None, split: str | None, labels: list[str], metric: str, method: str, seed: int):
        """(value, None) or (None, why-missing line). ``task`` None = any task; several labels = any of them."""
        found = self.runs
        if len(found):
            found = found[found["label"].isin(labels) & (found["seed"] == seed)]
            if task is not None:
                found = found[found["task"] == task]
        done = found[found["status"] == records.COMPLETED] if len(found) else found
        done, mismatch = self._same_reshape(done)
        order = {label: i for i, label in enumerate(labels)}
        done = done.assign(_o=done["label"].map(order)).sort_values(["_o", "task"]) if len(done) else done
        for _, run in done.iterrows():
            value = paper_value(run, metric, split or split_with(done, metric), method)
            if value is not None:
                return value, None
        label = labels[0] if len(labels) == 1 else f"{{{','.join(labels)}}}"
        name = f"{self.model}/{task or '<any task>'}/{self.regime}/{label}/seed={seed}"
        if mismatch:
            return None, f"{name} ({mismatch})"
        if len(done):
            return None, f"{name} (completed, but its record has no {metric})"
        status = found.iloc[0]["status"] if len(found) else "missing"
        return None, f"{name} ({status})"

    def _same_reshape(self, done: pd.DataFrame) -> tuple[pd.DataFrame, str | None]:
        """The runs with the paper's (m, n, r), and what another one had (None when all match or none is asked)."""
        if self.reshape is None or not len(done):
            return done, None
        same = done["bias_reshape"].map(lambda r: r is not None and tuple(r) == self.reshape)
        mismatch = None
        if not same.all():
            got = next(tuple(r) for r, ok in zip(done["bias_reshape"], same, strict=True) if not ok)
            mismatch = f"reshape (m,n,r)={got}, the paper's is {self.reshape}"
        return done[same], mismatch


def ranking_targets(results_dir: Path) -> dict[tuple[str, str, str, int], str]:
    """(model, task, regime, seed) -> the bias the magnitude+angle ranking selected (the paper's dagger)."""
    out = {}
    for _, rec in records.iter_rankings(results_dir):
        if rec.completed and rec.run.variant is None:
            out[(rec.run.model, rec.run.task, rec.run.regime, rec.run.seed)] = rec.target
    return out


def find_record(found: Iterable[R], **coords: Any) -> R | None:
    """The record whose ``run`` has these coordinates and no variant: a completed one, else the first, else None."""
    matches = [r for r in found if r.run.matches(variant=None, **coords)]
    return next((r for r in matches if r.completed), matches[0] if matches else None)
