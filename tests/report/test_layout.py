"""Tables in the paper's layout: rows and columns as printed, each cell ours beside the paper's, missing shown."""

from __future__ import annotations

import pandas as pd
import pytest

from beft.report import layout, render
from beft.report.cells import build_table
from beft.report.lookup import run_table
from beft.report.names import paper_models
from tests.conftest import write_record
from tests.report.conftest import COLA, paper_table, run_id, write_run

MODELS = paper_models()


def test_table1_rows_are_regime_and_bias_and_columns_the_tasks(results):
    table = build_table(paper_table("table01"), run_table(results), MODELS, {})
    grid = layout.grid(table, "table01")
    assert grid.rows == [f"{r} b_{b}" for r in ("low", "medium", "high") for b in "vqk"]
    assert grid.columns == ["SST-2", "RTE", "QQP", "QNLI", "MNLI-m", "MNLI-mm", "CoLA", "MRPC", "STS-B", "Avg."]
    shown = grid.frame(layout.ours_and_paper)
    mean = 100 * sum(COLA["v"]) / 3  # Table 1 is seed 0 only: ours is the seed-0 run, the paper's beside it
    assert shown.loc["low b_v", "CoLA"] == "40.00 (43.20)" and mean != 40.0
    assert shown.loc["low b_v", "MNLI-m"] == "61.00 (43.80)"
    assert shown.loc["medium b_k", "QQP"] == "missing (0.00)"
    assert shown.loc["low b_v", "Avg."] == "— (64.50)"  # not all nine columns are there


def test_table11_cells_show_the_population_std_and_partial_seeds(results):
    grid = layout.grid(build_table(paper_table("table11"), run_table(results), MODELS, {}), "table11")
    shown = grid.frame(layout.ours_and_paper)
    std = pd.Series([100 * x for x in COLA["v"]]).std(ddof=0)
    assert shown.loc["b_v", "CoLA"] == f"{100 * sum(COLA['v']) / 3:.2f} ± {std:.2f} (40.20 ± 2.85)"
    assert shown.loc["b_v", "STS-B"] == "70.00 [1/3] (75.30 ± 0.65)"  # one of three seeds completed
    spreads = grid.frame(layout.spread)
    sample = pd.Series([100 * x for x in COLA["v"]]).std(ddof=1)
    assert spreads.loc["b_v", "CoLA"].startswith(f"{100 * sum(COLA['v']) / 3:.2f} ± {sample:.2f} [")


@pytest.mark.parametrize(
    ("name", "rows", "columns"),
    [
        ("table02", ["BEFT b_v", "Rand uniform", "All biases", "Full FT"], ["Params %", "Runtime (s)", "Acc."]),
        ("table04", ["b_v", "b_q", "b_k", "Params (% of d)"], ["Directly", "+LoRA", "+VeRA", "+DoRA"]),
        ("table07", ["seed 0", "seed 1", "seed 2", "seed 3", "seed 4", "seeds 0-4"], ["b_v", "b_o"]),
        ("table14", ["bert-base-cased", "roberta-base", "bert-large-cased"], ["Params saving %", "b_v", "b_q", "b_k"]),
    ],
)
def test_tables_with_their_own_layout(name, rows, columns):
    grid = layout.grid(build_table(paper_table(name), pd.DataFrame(), MODELS, {}), name)
    assert (grid.rows, grid.columns) == (rows, columns)
    assert all(text.startswith("missing (") for text in grid.frame(layout.ours_and_paper).stack() if text)


def test_every_paper_cell_has_its_own_place():
    for n in range(1, 17):
        table = build_table(paper_table(f"table{n:02d}"), pd.DataFrame(), MODELS, {})
        assert len(layout.grid(table, f"table{n:02d}").cells) == len(table), n  # no two rows share a cell


def test_auto_rows_sit_beside_the_fixed_biases_with_the_chosen_bias(results):
    for seed, (chosen, value) in enumerate((("v", 0.41), ("v", 0.43), ("q", 0.30))):
        run = run_id("bert_base", "cola", "low", "beft", "auto", seed)
        auto = {"approach": "angle", "chosen": chosen, "scores": {"q": 0.1, "k": 0.0, "v": 0.3},
                "ranking": f"bert_base/cola/low/ranking/seed={seed}/ranking.json"}  # fmt: skip
        write_record(run_folder(results, run), {"status": "completed", "run": vars(run), "auto": auto,
                                                "final": {"validation": {"mcc": value}}})  # fmt: skip
    table = build_table(paper_table("table11"), run_table(results), MODELS, {})
    grid = layout.grid(table, "table11")
    assert grid.rows == ["b_v", "BEFT (auto)", "b_q", "b_k"]
    cell = grid.frame(layout.ours_and_paper).loc["BEFT (auto)", "CoLA"]
    mean, std = 100 * (0.41 + 0.43 + 0.30) / 3, pd.Series([41.0, 43.0, 30.0]).std(ddof=0)
    assert cell == f"{mean:.2f} ± {std:.2f} →v,v,q"  # no paper value: the paper has no such row
    assert "bert_base/sst2/low/beft-auto/seed=0 (missing)" in table.loc[table["bias"] == "auto", "missing"].iloc[0]


def test_no_auto_rows_without_auto_runs(results):
    table = build_table(paper_table("table11"), run_table(results), MODELS, {})
    assert "auto" not in set(table["bias"])


def test_markdown_and_latex(results):
    table = build_table(paper_table("table11"), run_table(results), MODELS, {})
    md, tex = render.render(table, "Paper table11", "table11")
    assert "|     | SST-2" in md and "## Ours: sample std and 95 % confidence interval" in md
    assert "population std (ddof = 0" in md and "sample std (ddof = 1)" in md
    assert "- bert_base/stsb/low/beft-v/seed=1 (failed)" in md
    assert r"\begin{tabular}" in tex and r"$\pm$" in tex and "±" not in tex and r"$^\dagger$" not in tex


def run_folder(root, run):
    from beft import records

    return records.run_folder(root, run.name)


def test_difference_map_values(results):
    write_run(results, "bert_base", "sst2", "low", "beft", "v", 0, "accuracy", 0.9)
    grid = layout.grid(build_table(paper_table("table03"), run_table(results), MODELS, {}), "table03")
    values, labels, rows, columns = layout.differences(grid)
    i, j = rows.index("bert-base-cased b_v"), columns.index("SST-2")
    assert values[i, j] == pytest.approx(90.0 - 85.8) and labels[i][j] == "90.0\n(85.8)"
    k = columns.index("RTE")
    assert pd.isna(values[i, k]) and labels[i][k] == "missing\n(59.5)"
