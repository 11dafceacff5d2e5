"""``make tables`` from fixture records: every table, the summary and the analogue tables are written."""

from __future__ import annotations

import pandas as pd
import pytest

from beft.report import stats, tables
from tests.report.conftest import COLA, PAPER, write_run


def test_build_all_writes_every_table_summary_and_mnli_splits(results, tmp_path):
    out = tmp_path / "tables"
    written = tables.build_all(results, PAPER, out)
    for n in range(1, 17):
        assert (out / f"table{n:02d}.md").is_file() and (out / f"table{n:02d}.tex").is_file()
    assert (out / "table11.png") in written
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file is left behind
    table1 = (out / "table01.md").read_text()
    assert "| 61.00 (43.80) " in table1 and "| 63.00 (45.70) " in table1  # MNLI-m and MNLI-mm from one run
    header = next(line for line in table1.splitlines() if line.startswith("|  "))
    columns = ["", "SST-2", "RTE", "QQP", "QNLI", "MNLI-m", "MNLI-mm", "CoLA", "MRPC", "STS-B", "Avg."]
    assert [c.strip() for c in header.strip("|").split("|")] == columns
    long = pd.read_csv(out / "table01.csv")  # the long format, one row per paper cell, for machines
    assert len(long) == 90 and {"ours", "std_sample", "ci_low", "ci_high", "missing"} <= set(long.columns)
    assert {
        "fig01_bert_base.png",
        "fig04_bert_base_cola.png",
        "fig11_bert_base.png",
        "figures.md",
        "appendix_c5.md",
    } <= {p.name for p in written}
    assert "99.00" not in table1  # the variant is not used
    summary = (out / "summary.md").read_text()
    row = next(line for line in summary.splitlines() if "| cola" in line)
    p_vq = stats.paired_ttest(dict(enumerate(COLA["v"])), dict(enumerate(COLA["q"])))["p"]
    assert "| yes " in row and f"{p_vq:.3g}" in row
    assert "0.005; 0.003" in row  # the paper's p-values (Table 8) beside ours
    assert "held in 1 of 1" in summary


def test_analogue_tables_compare_another_model(results, tmp_path):
    minilm = tmp_path / "runs"
    write_run(minilm, "minilm", "rte", "low", "beft", "v", 0, "accuracy", 0.6)
    out = tmp_path / "tables"
    tables.build_all(minilm, PAPER, out, ["minilm=bert-base-cased"], draw=False)
    text = (out / "table03_minilm.md").read_text()
    assert "analogue of bert-base-cased" in text and "60.00" in text
    assert not (out / "table05_minilm.md").exists()  # no BERT-base rows in the OPT table


def test_cli_rejects_unknown_paper_model(tmp_path):
    with pytest.raises(SystemExit):
        tables.main(["--results-dir", str(tmp_path), "--analogue", "minilm=bert-huge"])
    with pytest.raises(SystemExit):  # an offline model is not one of the paper's
        tables.main(["--results-dir", str(tmp_path), "--analogue", "x=sentence-transformers/all-MiniLM-L6-v2"])
