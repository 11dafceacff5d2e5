"""Appendix C.5: b_v's gain over b_q and over b_k with PiSSA and BA-LoRA on the bias (RoBERTa-base, SST-2 low),
ours beside the paper's.

The paper gives only the gains ("b_v achieves 15.7 % higher accuracy than b_q") and does not say whether they are
points or relative percentages, so both are shown: points = 100 (acc_v - acc_q), relative = 100 (acc_v - acc_q) /
acc_q, over the seeds both biases have (mean accuracies). The paper's model and every other encoder model with such
runs get a row each.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from beft import records
from beft.report import names
from beft.report.lookup import present
from beft.report.paper import clean, read_paper

SOURCE = "appendix_c5_c7_relative_gains.csv"
SECTION = "C.5 text"
PAPER_MODEL = "roberta-base"


def gains(paper: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per model, method and comparison: the paper's gain and ours in points and relative %."""
    rows = paper[paper["table"] == SECTION]
    methods = set(rows["method"].map(names.config_method))
    has_runs = set(runs.loc[runs["method"].isin(methods), "model"]) if len(runs) else set()
    models = [names.paper_models()[PAPER_MODEL]] + sorted(has_runs - {names.paper_models()[PAPER_MODEL]})
    out = []
    for model in models:
        for _, row in rows.iterrows():
            first, second = (b.strip().removeprefix("b_") for b in clean(row["bias"]).split(" vs "))
            ours = _gain(runs, model, row, names.config_method(row["method"]), first, second)
            out.append({"model": model, "task": row["task"], "regime": row["regime"], "method": row["method"],
                        "comparison": clean(row["bias"]), "paper_gain": float(row["value"]), **ours})  # fmt: skip
    return pd.DataFrame(out)


def _accuracies(runs: pd.DataFrame, model: str, row: pd.Series, method: str, bias: str) -> dict[int, float]:
    task = names.paper_tasks()[clean(row["task"])][0]
    mine = runs[(runs["model"] == model) & (runs["task"] == task) & (runs["regime"] == row["regime"])
                & (runs["label"] == names.run_label(method, bias)) & (runs["status"] == records.COMPLETED)]  # fmt: skip
    column = "validation/accuracy"
    if column not in mine:
        return {}
    return {int(s): float(v) for s, v in zip(mine["seed"], mine[column], strict=True) if present(v)}


def _gain(runs: pd.DataFrame, model: str, row: pd.Series, method: str, first: str, second: str) -> dict:
    a = _accuracies(runs, model, row, method, first) if len(runs) else {}
    b = _accuracies(runs, model, row, method, second) if len(runs) else {}
    seeds = sorted(set(a) & set(b))
    task = names.paper_tasks()[clean(row["task"])][0]
    lacking = [f"{model}/{task}/{row['regime']}/{names.run_label(method, bias)}" for bias, got in
               ((first, a), (second, b)) if not got]  # fmt: skip
    if not seeds:
        return {"points": None, "relative": None, "seeds": 0, "missing": "; ".join(lacking)}
    mean_a = sum(a[s] for s in seeds) / len(seeds)
    mean_b = sum(b[s] for s in seeds) / len(seeds)
    relative = 100 * (mean_a - mean_b) / mean_b if mean_b else None
    return {"points": 100 * (mean_a - mean_b), "relative": relative, "seeds": len(seeds), "missing": ""}


def render(table: pd.DataFrame) -> str:
    """Markdown: rows model and method, columns the comparisons; each cell ours (points / relative) and the paper's."""
    lines = ["# Appendix C.5 — b_v's gain with PiSSA and BA-LoRA on the bias", ""]
    if table.empty:
        return "\n".join([*lines, "No Appendix C.5 rows in the paper's numbers.", ""])

    def cell(row: pd.Series) -> str:
        paper = f"(paper +{row['paper_gain']:.1f} %)"
        if not present(row["points"]):
            return f"missing {paper}"
        relative = "—" if not present(row["relative"]) else f"{row['relative']:+.1f} %"
        return f"{row['points']:+.1f} pts / {relative} [n={row['seeds']}] {paper}"

    shown = table.assign(row=table["model"] + " " + table["method"].map(lambda m: names.label("method", m)),
                         text=table.apply(cell, axis=1))  # fmt: skip
    grid = shown.pivot(index="row", columns="comparison", values="text")
    grid = grid.reindex(index=shown["row"].unique(), columns=shown["comparison"].unique()).rename_axis(index="")
    missing = [m for cell in table["missing"] if cell for m in cell.split("; ")]
    lines += [grid.to_markdown(), "", "Ours: accuracy of b_v minus the other bias, in points and relative to the "
              "other bias's accuracy, means over the seeds both have (n); the paper states the gain as a percentage "
              "without saying which. RoBERTa-base, SST-2 low as the paper; other encoder models with such runs "
              "beside it."]  # fmt: skip
    if missing:
        lines += ["", f"## Missing runs ({len(set(missing))})", ""] + [f"- {m}" for m in dict.fromkeys(missing)]
    return "\n".join(lines) + "\n"


def read(paper_dir: Path) -> pd.DataFrame | None:
    path = paper_dir / SOURCE
    return read_paper(path) if path.is_file() else None
