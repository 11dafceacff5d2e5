"""The transcribed paper tables (results/paper/tableNN_*.csv): reading them and what their cells mean.

A row names a model, task, regime, method and bias as the paper prints them, the metric, the paper's value and std,
and the seeds it averages over. Rows whose task is ``all`` or bias ``any`` hold for every task or bias (the params
rows); ``(inferred)`` marks a transcriber's inference and is dropped before matching.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

PAPER_TABLES = [f"table{n:02d}" for n in range(1, 17)]
SCORE_METRICS = {"accuracy", "f1", "f1_macro", "mcc", "spearman"}  # x100 from the records' 0-1 values
PARAM_METRICS = {"params_percent", "params_permille", "runtime_s"}
BIAS_PEFT_METRICS = {"params_relative_percent", "params_relative_permille", "params_saving_percent"}
P_VALUE = "p_value"
AVERAGE_METRIC = "mean_of_9_columns"  # Table 1's "Avg.": the plain mean of the row's 9 task columns
ANY_TASK = "all"  # a per-method row that holds for every task (the decoder tables' params column)
ANY_BIAS = "any"  # a per-method row that holds for b_v, b_q and b_k alike (Tables 4, 13, 14's Params rows)
_RESHAPE = re.compile(r"\(m,\s*n,\s*r\)\s*=\s*\((\d+),\s*(\d+),\s*(\d+)\)")


def clean(text: str) -> str:
    """A cell without the transcriber's ``(inferred)`` mark."""
    return re.sub(r"\s*\(inferred\)", "", str(text)).strip()


def paper_seeds(text: str) -> list[int]:
    """The seeds a paper row averages over (docs/experiments.md §8.1: unstated multi-seed = 0, 1, 2)."""
    text = str(text)
    if text.isdigit():
        return [int(text)]
    if m := re.fullmatch(r"(\d+)-(\d+)", text):
        return list(range(int(m[1]), int(m[2]) + 1))
    if m := re.match(r"(\d+) seeds", text):
        return list(range(int(m[1])))
    if text.startswith("multi"):
        return [0, 1, 2]
    return [0]


def reshape_of(row: pd.Series) -> tuple[int, int, int] | None:
    """The (m, n, r) a bias-PEFT row names in its notes (Table 14), else None."""
    m = _RESHAPE.search(str(row.get("notes", "")))
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def read_paper(path: Path) -> pd.DataFrame:
    """One transcribed paper table, cells as printed (``n/a`` stays text; only empty cells are missing)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def read_paper_tables(paper_dir: Path) -> dict[str, tuple[str, pd.DataFrame]]:
    """``tableNN`` -> (file stem, the table with numeric values) for each of paper Tables 1-16 in ``paper_dir``."""
    papers = {}
    for path in sorted(paper_dir.glob("table*.csv")):
        if path.stem[:7] in PAPER_TABLES:
            frame = read_paper(path)
            papers[path.stem[:7]] = (path.stem, frame.assign(value=pd.to_numeric(frame["value"], errors="coerce")))
    return papers
