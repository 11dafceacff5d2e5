"""``make tables``' figures from the records: the paper's Fig. 1, Fig. 4 and Fig. 11, a learning-curve figure per
setting, and ``figures.md``, which lists every figure with the runs it lacks.

Fig. 1 (Appendix C.4, Table 4's runs): SST-2 low, score against trainable parameters of b_v/b_q/b_k trained
directly and with LoRA on the bias. Fig. 4 (Section 3.3): per approach, the importance of b_v/b_q/b_k across the
regimes beside their scores (``beft.report.regimes``). Fig. 11: Table 2's comparison (BEFT b_v, BitFit, full
fine-tuning, random parameters) on every low-regime GLUE task. Fig. 1, 4 and 11 are drawn for every encoder model
with runs; a point is the mean +- population std over the completed seeds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from beft import atomic, records
from beft.report import lookup, names, plots, regimes, stats
from beft.report.paper import clean

FIG1 = {"task": "sst2", "regime": "low", "methods": {"beft": "directly", "bias_lora": "+LoRA"}, "paper": "table04"}
FIG4_TASKS = ("sst2", "cola", "stsb")  # the paper's Fig. 4 (Fig. 10: the other tasks)
FIG4_REGIMES = ("low", "medium", "high", "all")
FIG11_TASKS = ("sst2", "rte", "qqp", "qnli", "mnli", "cola", "mrpc", "stsb")  # Table 1's GLUE tasks
FIG11_LABELS = ("beft-v", "bitfit", "full", "rand_uniform")  # Table 2's rows
CURVE_BIASES = ("v", "q", "k", "auto")


def _scores(runs: pd.DataFrame, task: str) -> tuple[str | None, pd.Series]:
    """The main metric's name and the runs' scores x100 (NaN where a run lacks it)."""
    column = lookup.main_column(runs, task) if len(runs) else None
    if column is None:
        return None, pd.Series(np.nan, index=runs.index)
    return column.split("/")[1], 100 * runs[column].astype(float)


def _mean_point(runs: pd.DataFrame, task: str) -> dict[str, Any] | None:
    metric, scores = _scores(runs, task)
    values = scores.dropna().tolist()
    if not values:
        return None
    mean, std = stats.mean_std(values)
    return {"y": mean, "err": std, "n": len(values), "metric": metric}


def fig1(runs: pd.DataFrame, model: str, paper: pd.DataFrame | None) -> tuple[list[dict], list[str]]:
    """Fig. 1's points of one model and the runs it lacks; the paper's values from Table 4 (BERT-base)."""
    points, missing = [], []
    for method, kind in FIG1["methods"].items():
        for bias in names.BIASES:
            label = names.run_label(method, bias)
            mine = runs[(runs["model"] == model) & (runs["task"] == FIG1["task"]) & (runs["regime"] == FIG1["regime"])
                        & (runs["label"] == label) & (runs["status"] == records.COMPLETED)]  # fmt: skip
            point = _mean_point(mine, FIG1["task"])
            if point is None or mine["params_trainable"].isna().all():
                missing.append(f"{model}/{FIG1['task']}/{FIG1['regime']}/{label}")
                continue
            paper_method = "bias_ft" if method == "beft" else method
            points.append({**point, "x": float(mine["params_trainable"].dropna().iloc[0]), "bias": bias, "kind": kind,
                           "paper": _paper_value(paper, paper_method, f"b_{bias}")})  # fmt: skip
    return points, missing


def _paper_value(paper: pd.DataFrame | None, method: str, bias: str) -> float | None:
    if paper is None:
        return None
    found = paper[(paper["method"] == method) & (paper["bias"].map(clean) == bias) & paper["value"].notna()]
    found = found[found["metric"] == "accuracy"]
    return float(found["value"].iloc[0]) if len(found) else None


def fig11(runs: pd.DataFrame, model: str) -> tuple[dict[str, list[dict]], list[str]]:
    """Fig. 11's panels (one per low-regime GLUE task) of one model and the runs it lacks."""
    panels, missing = {}, []
    for task in FIG11_TASKS:
        points = []
        for label in FIG11_LABELS:
            mine = runs[(runs["model"] == model) & (runs["task"] == task) & (runs["regime"] == "low")
                        & (runs["label"] == label) & (runs["status"] == records.COMPLETED)]  # fmt: skip
            point = _mean_point(mine, task)
            if point is None or mine["params_percent"].isna().all():
                missing.append(f"{task}/{label}")
                continue
            runtime = mine["runtime_s"].dropna()
            text = f"{runtime.mean():.0f} s train" if len(runtime) else "time n/a"
            points.append({**point, "x": float(mine["params_percent"].dropna().iloc[0]), "label": label,
                           "runtime": f"{text}, n={point['n']}"})  # fmt: skip
        panels[names.paper_task(task) or task.upper()] = points
    return panels, missing


def curves(run_records: list[records.RunRecord], model: str, task: str, regime: str) -> tuple[str, dict]:
    """Per bias, the mean and population std over seeds of the main score per epoch (epochs every seed has)."""
    by_bias: dict[str, list[dict[int, float]]] = {}
    metric = "score"
    for rec in run_records:
        run = rec.run
        if not (rec.completed and run.variant is None and run.method == "beft" and rec.score and rec.epochs):
            continue
        if (run.model, run.task, run.regime) != (model, task, regime) or run.bias not in CURVE_BIASES:
            continue
        metric, split = rec.score.metric, rec.score.split
        series = {e["epoch"]: 100 * e[split][metric] for e in rec.epochs if metric in e.get(split, {})}
        by_bias.setdefault(run.bias, []).append(series)
    out = {}
    for bias in CURVE_BIASES:
        seeds = by_bias.get(bias)
        if not seeds:
            continue
        epochs = sorted(set.intersection(*(set(s) for s in seeds)))
        values = [[s[e] for s in seeds] for e in epochs]
        out[bias] = {"epochs": epochs, "mean": [np.mean(v) for v in values], "std": [np.std(v) for v in values],
                     "n": len(seeds)}  # fmt: skip
    return metric, out


def _line(name: str, what: str, missing: list[str]) -> str:
    lacks = f" Missing ({len(missing)}): {'; '.join(missing)}." if missing else " Nothing missing."
    return f"- `{name}`: {what}.{lacks}"


def draw_all(runs: pd.DataFrame, results_dir: Path, paper_table04: pd.DataFrame | None, out_dir: Path) -> list[Path]:
    """Every figure from the records, and ``figures.md`` listing them with what each lacks."""
    found = regimes.read(results_dir) if results_dir.is_dir() else ([], [])
    run_records = [rec for rec in found[1] if rec.run.variant is None]
    encoders = sorted(m for m in set(runs["model"].dropna()) if names.model_kind(m) == "encoder")
    written, lines = [], ["# Figures", "", "Drawn from the records by `make tables`; a point or line is the mean ± "
                          "population std over the completed seeds.", ""]  # fmt: skip
    for model in encoders:
        points, missing = fig1(runs, model, paper_table04)
        name = f"fig01_{model}.png"
        title = f"Fig. 1 — {model}, SST-2 low: score vs trainable parameters (paper: BERT-base, Table 4)"
        written.append(plots.params_vs_score(points, title, missing, out_dir / name))
        lines.append(_line(name, "Fig. 1, score against trainable parameters, b_v/b_q/b_k directly and +LoRA", missing))
        for task in FIG4_TASKS:
            collected = regimes.collect(results_dir, model, task, 0, FIG4_REGIMES, found=found)
            name = f"fig04_{model}_{task}.png"
            title = f"Fig. 4 — {model} {task} seed 0: importance vs score across regimes"
            written.append(regimes.draw(collected, FIG4_REGIMES, title, out_dir / name))
            lines.append(_line(name, f"Fig. 4, {task}: importance per approach and score per regime",
                               [f"{model}/{task}/{m}" for m in collected["missing"]]))  # fmt: skip
        panels, missing = fig11(runs, model)
        name = f"fig11_{model}.png"
        title = f"Fig. 11 — {model}, low regime: score vs trainable parameters % (Table 2's methods per task)"
        written.append(plots.efficiency_panels(panels, title, missing, out_dir / name))
        lines.append(_line(name, "Fig. 11, Table 2's comparison on each GLUE task", [f"{model}/{m}" for m in missing]))
    lines += ["", "## Learning curves", ""]
    done = runs[(runs["status"] == records.COMPLETED) & (runs["method"] == "beft")]
    for (model, task, regime), _ in done.groupby(["model", "task", "regime"], sort=True):
        metric, by_bias = curves(run_records, model, task, regime)
        if not by_bias or max(len(c["epochs"]) for c in by_bias.values()) < 2:
            lines.append(f"- {model} {task} {regime}: no learning curve (the records hold fewer than two evaluated "
                         "epochs)")  # fmt: skip
            continue
        name = f"curves/{model}_{task}_{regime}.png"
        title = f"{model} {task} {regime}: {metric} per epoch (mean ± population std over seeds)"
        written.append(plots.learning_curves(by_bias, metric, title, out_dir / name))
        lacking = [f"b_{b}" for b in names.BIASES if b not in by_bias]
        seeds = ", ".join(f"{b}: {c['n']} seeds" for b, c in by_bias.items())
        lines.append(_line(name, f"learning curves ({seeds})", lacking))
    written.append(atomic.write_text(out_dir / "figures.md", "\n".join(lines) + "\n"))
    return written
