"""Our value of each paper row, beside the paper's: the table of one paper table and one model map.

A row's kind picks how its cell is filled: a score or parameter row gets the mean +- population std over the paper's
seeds of the runs that reproduce it (model, task, regime, the run label of the paper's method and bias); a p-value row
our paired t-test by seed of the two biases it compares (Appendix C.2); Table 1's Avg. the mean of its task columns.
Rows we cannot fill stay, with what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from beft.report import names, stats
from beft.report.lookup import RECORD_COLUMNS, RunLookup, present, record_metric
from beft.report.paper import (
    ANY_BIAS,
    ANY_TASK,
    AVERAGE_METRIC,
    BIAS_PEFT_METRICS,
    P_VALUE,
    PARAM_METRICS,
    SCORE_METRICS,
    clean,
    paper_seeds,
    reshape_of,
)

DAGGER = "†"  # the bias our magnitude+angle ranking selected
AUTO_LABEL = names.run_label("beft", "auto")  # bias=auto runs: the "BEFT (auto)" row


@dataclass
class Cell:
    """Our value of one paper row, the runs it needs and what is missing."""

    seeds: int
    ours: float | None = None
    ours_std: float | None = None
    n: int = 0
    missing: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    selected: str = ""
    values: list[float] = field(default_factory=list)  # one per seed that has one (mean rows)


@dataclass
class Query:
    """One paper row in this suite's names, with the runs to look it up in."""

    model: str
    task_text: str
    task: str | None  # None: any task
    split: str | None  # None: the split the runs report
    regime: str
    method: str
    bias: str
    metric: str
    seeds: list[int]
    task_metric: str | None  # the score metric the table reports for the row's model and task (p-value rows)
    runs: pd.DataFrame
    lookup: RunLookup
    targets: dict

    def run_name(self, label: str, seed: int) -> str:
        return f"{self.model}/{self.task}/{self.regime}/{label}/seed={seed}"


def _average_later(q: Query, cell: Cell) -> None:
    """Filled in from the row's task columns once every row is there (``averages``)."""


def _unknown_task(q: Query, cell: Cell) -> None:
    cell.missing = [f"{q.model}/{q.task_text}: task unknown to this suite"]


def _not_computed(q: Query, cell: Cell) -> None:
    cell.missing = [f"{q.model}/{q.task_text}: metric {q.metric!r} is not computed from records"]


def _p_value(q: Query, cell: Cell) -> None:
    """Two-sided paired t-test by seed of the two compared biases (Appendix C.2) on the task's score."""
    labels = [names.run_label("beft", b.strip()) for b in q.bias.split(" vs ")]
    metric = q.task_metric or record_metric(q.runs, q.model, q.task)
    by: list[dict[int, float]] = [{}, {}]
    for i, label in enumerate(labels):
        for seed in q.seeds:
            value, why = q.lookup.value(q.task, q.split, [label], metric, "beft", seed)
            cell.runs.append(q.run_name(label, seed))
            if value is None:
                cell.missing.append(why)
            else:
                by[i][seed] = value
    result = stats.paired_ttest(*by)
    cell.ours, cell.n = result["p"], result["n"]


def _mean(q: Query, cell: Cell) -> None:
    """Mean +- population std over the paper's seeds; a row of bias ``any`` takes any bias's run."""
    biases = names.BIASES if q.bias == ANY_BIAS else [q.bias]
    labels = [names.run_label(q.method, b) for b in biases]
    values = []
    for seed in q.seeds:
        value, why = q.lookup.value(q.task, q.split, labels, q.metric, q.method, seed)
        if q.task is not None and len(labels) == 1:
            cell.runs.append(q.run_name(labels[0], seed))
        if value is None:
            cell.missing.append(why)
        else:
            values.append(value)
    if values:
        cell.ours, cell.ours_std = stats.mean_std(values)
    cell.n, cell.values = len(values), values
    if q.bias == "auto":
        cell.selected = _auto_choices(q)
        return
    selected = q.targets.get((q.model, q.task, q.regime, 0))
    if q.method == "beft" and q.task is not None and selected == q.bias.removeprefix("b_"):
        cell.selected = DAGGER


def _auto_choices(q: Query) -> str:
    """The biases the ``bias=auto`` runs chose, by seed (``→v`` when every seed chose b_v)."""
    runs = q.runs[(q.runs["model"] == q.model) & (q.runs["task"] == q.task) & (q.runs["regime"] == q.regime)
                  & (q.runs["label"] == AUTO_LABEL) & q.runs["seed"].isin(q.seeds)].sort_values("seed")  # fmt: skip
    chosen = [str(c) for c in runs.get("auto_chosen", []) if present(c)]
    return "" if not chosen else "→" + (chosen[0] if len(set(chosen)) == 1 else ",".join(chosen))


METRIC_KINDS = {P_VALUE: "p_value", **dict.fromkeys(SCORE_METRICS | PARAM_METRICS | BIAS_PEFT_METRICS, "mean")}
FILL: dict[str, Callable[[Query, Cell], None]] = {
    "average": _average_later,
    "unknown_task": _unknown_task,
    "not_computed": _not_computed,
    "p_value": _p_value,
    "mean": _mean,
}


def row_kind(metric: str, task_text: str) -> str:
    """Which of ``FILL`` fills a row: Avg. rows first, then rows of a task this suite lacks, then by metric."""
    if metric == AVERAGE_METRIC:
        return "average"
    if task_text != ANY_TASK and task_text not in names.paper_tasks():
        return "unknown_task"
    return METRIC_KINDS.get(metric, "not_computed")


def our_cell(row: pd.Series, model: str, runs: pd.DataFrame, targets: dict, own_model: bool) -> Cell:
    """Our value of one paper row for ``model``; ``own_model`` when it is the paper's model, not an analogue."""
    task_text, method = clean(row["task"]), names.config_method(row["method"])
    task, split = names.paper_tasks().get(task_text, (None, None))
    reshape = reshape_of(row) if own_model and method.startswith("bias_") else None
    query = Query(model=model, task_text=task_text, task=task, split=split, regime=row["regime"], method=method,
                  bias=clean(row["bias"]), metric=row["metric"], seeds=paper_seeds(row["seeds"]),
                  task_metric=row.get("_task_metric"), runs=runs, lookup=RunLookup(runs, model, row["regime"], reshape),
                  targets=targets)  # fmt: skip
    cell = Cell(seeds=len(query.seeds))
    FILL[row_kind(query.metric, task_text)](query, cell)
    return cell


def build_table(paper: pd.DataFrame, runs: pd.DataFrame, model_map: dict[str, str], targets: dict) -> pd.DataFrame:
    """Paper rows of one table (those with a model of ``model_map``) beside ours and what is missing.

    Every row of the paper's CSV stays, including those we cannot fill (their ``missing`` says why). ``runs`` lists
    the run names (``<model>/<task>/<regime>/<label>/seed=<n>``) a row needs; rows that any task or any bias can
    fill (the params rows) list none.
    """
    if len(runs) == 0 or "model" not in runs:
        runs = pd.DataFrame(columns=RECORD_COLUMNS)
    paper = with_auto_rows(paper.assign(_task_metric=_score_metric_by_task(paper)), runs, model_map)
    own = names.paper_models()
    out = []
    for _, row in paper.iterrows():
        paper_model = clean(row["model"])
        model = model_map.get(paper_model)
        if model is None:
            continue
        cell = our_cell(row, model, runs, targets, own_model=own.get(paper_model) == model)
        ours = cell.ours
        diff = None if ours is None or pd.isna(row["value"]) or row["metric"] == P_VALUE else ours - row["value"]
        out.append({
            "model": model, "paper_model": paper_model, "task": clean(row["task"]), "regime": row["regime"],
            "method": row["method"], "bias": row["bias"], "metric": row["metric"], "paper": row["value"],
            "paper_std": row["std"], "ours": ours, "ours_std": cell.ours_std, "n": cell.n, "seeds": cell.seeds,
            "diff": diff, "selected": cell.selected, "missing": "; ".join(cell.missing), "runs": cell.runs,
            "seeds_text": row["seeds"], **_spread(cell.values),
        })  # fmt: skip
    return averages(pd.DataFrame(out))


def _spread(values: list[float]) -> dict[str, float | None]:
    """The sample std and the 95 % t-interval over seeds of a mean row (None for other rows and n < 2)."""
    described = stats.describe(values)
    return {key: described[key] for key in ("std_sample", "ci_low", "ci_high")}


def with_auto_rows(paper: pd.DataFrame, runs: pd.DataFrame, model_map: dict[str, str]) -> pd.DataFrame:
    """The paper's rows plus a "BEFT (auto)" row (bias ``auto``, no paper value) after each b_v score row of a
    bias-fine-tuning method, for the models that have ``bias=auto`` runs."""
    auto_models = set(runs.loc[runs["label"] == AUTO_LABEL, "model"]) if len(runs) else set()
    if not auto_models:
        return paper
    out = []
    for _, row in paper.iterrows():
        out.append(row)
        model = model_map.get(clean(row["model"]))
        is_bias_ft = names.config_method(row["method"]) == "beft" and clean(row["bias"]) == "b_v"
        if model in auto_models and is_bias_ft and row["metric"] in SCORE_METRICS:
            out.append(_auto_row(row))
    return pd.DataFrame(out).reset_index(drop=True)


def _auto_row(row: pd.Series) -> pd.Series:
    row = row.copy()
    row["bias"], row["value"], row["std"], row["notes"] = "auto", float("nan"), None, "BEFT (auto): bias=auto runs"
    return row


def _score_metric_by_task(paper: pd.DataFrame) -> list[str | None]:
    """Per row, the score metric the table reports for the row's model and task (for its p-value rows)."""
    scores = paper[paper["metric"].isin(SCORE_METRICS)]
    first = {(m, t): metric for m, t, metric in zip(scores["model"], scores["task"], scores["metric"], strict=True)}
    return [first.get((m, t)) for m, t in zip(paper["model"], paper["task"], strict=True)]


def averages(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1's Avg.: the plain mean of our values of the row's task columns, once all of them are there
    (n = columns with a value / columns)."""
    if table.empty:
        return table
    for i in table.index[table["metric"] == AVERAGE_METRIC]:
        key = table.loc[i, ["model", "regime", "method", "bias"]]
        same = (table[["model", "regime", "method", "bias"]] == key).all(axis=1)
        columns = table[same & table["metric"].isin(SCORE_METRICS)]
        have = [v for v in columns["ours"] if present(v)]
        table.at[i, "n"], table.at[i, "seeds"] = len(have), len(columns)
        if columns.size and len(have) == len(columns):
            mean = sum(have) / len(have)
            table.at[i, "ours"] = mean
            table.at[i, "diff"] = None if pd.isna(table.at[i, "paper"]) else mean - table.at[i, "paper"]
    return table
