"""A built table (one row per paper cell, ``cells.build_table``) laid out as the paper prints it: its rows (methods
and biases, by regime) and its columns (tasks), each cell our value beside the paper's.

The fields of a table's rows and columns are conf/paper.yaml's ``layouts``; fields whose value is the same in every
row are left out of the labels. A row (column) whose cells all hold one parameter metric says which in its label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from beft.report import names
from beft.report.lookup import present
from beft.report.paper import AVERAGE_METRIC, P_VALUE, SCORE_METRICS, clean

NOT_PARAMS = SCORE_METRICS | {P_VALUE, AVERAGE_METRIC}  # metrics a label never names (its column does)


@dataclass
class Grid:
    """A table in the paper's layout: row and column labels, and the long row of each (row, column) cell."""

    rows: list[str]
    columns: list[str]
    cells: dict[tuple[str, str], pd.Series]

    def frame(self, text) -> pd.DataFrame:
        """The grid as text, ``text(long_row)`` in each cell and an empty string where the paper has none."""
        data = [[text(self.cells[r, c]) if (r, c) in self.cells else "" for c in self.columns] for r in self.rows]
        return pd.DataFrame(data, index=self.rows, columns=self.columns)


def _value(row: pd.Series, field: str) -> str:
    if field == "model":
        return clean(row["paper_model"]).split("/")[-1]
    if field == "seeds_text":
        text = str(row.get("seeds_text", ""))
        if text.startswith("multi") or text == "nan":
            return ""
        return f"seed {text}" if text.isdigit() else f"seeds {text}" if re.fullmatch(r"\d+-\d+", text) else text
    return clean(row[field])


def _shown(field: str, value: str) -> str:
    return names.label(field, value) if field in ("task", "method", "bias", "metric") else value


def _key(row: pd.Series, fields: list[str]) -> tuple[str, ...]:
    return tuple(_value(row, f) for f in fields)


def _fields(table: pd.DataFrame, name: str) -> tuple[list[str], list[str]]:
    """The layout's fields, with the seeds (rows) and then the metric (columns) added where cells would collide."""
    rows, columns, _ = names.layout(name)
    for extra_rows, extra_columns in (([], []), (["seeds_text"], []), (["seeds_text"], ["metric"])):
        r, c = rows + [f for f in extra_rows if f not in rows], columns + [f for f in extra_columns if f not in columns]
        keys = [(_key(row, r), _key(row, c)) for _, row in table.iterrows()]
        if len(set(keys)) == len(keys):
            return r, c
    return r, c


def _labels(table: pd.DataFrame, fields: list[str], other: list[str], unnamed: str) -> dict[tuple[str, ...], str]:
    """Each key's label: the fields that vary across the table, plus the metric when all its cells share one
    parameter metric that no field names."""
    varying = [f for f in fields if table.apply(lambda r, f=f: _value(r, f), axis=1).nunique() > 1]
    out: dict[tuple[str, ...], str] = {}
    for _, row in table.iterrows():
        key = _key(row, fields)
        if key in out:
            continue
        same = table[table.apply(lambda r, key=key: _key(r, fields) == key, axis=1)]
        parts = [_shown(f, _value(row, f)) for f in fields if f in varying]
        metric = set(same["metric"])
        if "metric" not in fields + other and len(metric) == 1 and not metric & NOT_PARAMS:
            parts.append(names.label("metric", metric.pop()))
        out[key] = " ".join(p for p in parts if p) or unnamed
    return out


def grid(table: pd.DataFrame, name: str) -> Grid:
    """The built table of paper table ``name`` (``tableNN``) in the paper's layout, rows and columns in the paper's
    order."""
    row_fields, column_fields = _fields(table, name)
    unnamed = names.layout(name)[2]
    row_labels = _labels(table, row_fields, column_fields, unnamed)
    column_labels = _labels(table, column_fields, row_fields, unnamed)
    cells = {}
    for _, row in table.iterrows():
        cells[row_labels[_key(row, row_fields)], column_labels[_key(row, column_fields)]] = row
    rows = list(dict.fromkeys(row_labels.values()))
    columns = list(dict.fromkeys(column_labels.values()))
    return Grid(rows=rows, columns=columns, cells=cells)


def number(value, std=None, metric: str = "") -> str:
    """A number as the paper prints it: scores with 2 decimals, parameter fractions with 3, p-values with 3
    significant digits."""
    if not present(value) or str(value) == "":
        return "—"
    spec = ".3g" if metric == P_VALUE else ".3f" if metric in ("params_percent", "params_permille") else ".2f"
    text = f"{float(value):{spec}}"
    if present(std) and str(std) != "":
        text += f" ± {float(std):{spec}}"
    return text


def ours_and_paper(row: pd.Series) -> str:
    """``ours ± population std (paper)``; a partial mean says n/seeds, a missing one says so."""
    metric = row["metric"]
    if not present(row["ours"]):
        ours = "missing" if metric != AVERAGE_METRIC else "—"
    else:
        std = row["ours_std"] if row["n"] > 1 and metric != P_VALUE else None
        ours = number(row["ours"], std, metric) + (f" {row['selected']}" if row["selected"] else "")
        if 0 < row["n"] < row["seeds"]:
            ours += f" [{row['n']}/{row['seeds']}]"
    paper = number(row["paper"], row["paper_std"], metric) if present(row["paper"]) else None
    return ours if paper is None else f"{ours} ({paper})"


def spread(row: pd.Series) -> str:
    """``mean ± sample std [95 % interval]`` of a mean row over its seeds (``n = 1`` without a spread)."""
    if not present(row["ours"]) or row["metric"] not in SCORE_METRICS:
        return ""
    if not present(row.get("std_sample")):
        return f"{number(row['ours'])} (n = {row['n']})"
    ci = f"[{number(row['ci_low'])}, {number(row['ci_high'])}]"
    return f"{number(row['ours'], row['std_sample'])} {ci} (n = {row['n']})"


def differences(laid_out: Grid) -> tuple[np.ndarray, list[list[str]], list[str], list[str]]:
    """The score cells of a grid for a heat-map: ours minus the paper's (NaN: no difference), each cell's label
    (``ours`` over ``(paper)``), and the rows and columns that have a score cell."""
    scored = {key: row for key, row in laid_out.cells.items() if row["metric"] in SCORE_METRICS | {AVERAGE_METRIC}}
    rows = [r for r in laid_out.rows if any((r, c) in scored for c in laid_out.columns)]
    columns = [c for c in laid_out.columns if any((r, c) in scored for r in rows)]
    values = np.full((len(rows), len(columns)), np.nan)
    labels = [["" for _ in columns] for _ in rows]
    for i, r in enumerate(rows):
        for j, c in enumerate(columns):
            row = scored.get((r, c))
            if row is None:
                continue
            ours = f"{row['ours']:.1f}" if present(row["ours"]) else "missing"
            paper = f"({row['paper']:.1f})" if present(row["paper"]) else ""
            labels[i][j] = f"{ours}\n{paper}".strip()
            if present(row["diff"]):
                values[i, j] = row["diff"]
    return values, labels, rows, columns
