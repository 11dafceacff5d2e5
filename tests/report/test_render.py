"""The summary (does b_v > b_q > b_k hold) and the run wall times, from fixture records."""

from __future__ import annotations

import pandas as pd

from beft.report import render, stats, tables
from beft.report.lookup import run_table
from tests.report.conftest import COLA, PAPER, run_id, write, write_run


def test_decoder_summary_uses_the_records_score(decoder_results, tmp_path):
    out = tmp_path / "tables"
    tables.build_all(decoder_results, PAPER, out, draw=False)
    summary = (out / "summary.md").read_text()
    cb = next(line for line in summary.splitlines() if "| cb" in line)
    assert "accuracy" in cb and "| yes " in cb and "0.023; 0.001" in cb  # Table 9's p-values beside ours
    squad = next(line for line in summary.splitlines() if "| squad" in line)
    assert "| f1 " in squad and "78.17 ± 0.62" in squad
    table9 = (out / "table09.md").read_text()
    assert "77.33 ± 2.05 (77.30 ± 2.20)" in table9 and "| 0.109 (0.023) " in table9  # ours (the paper's)


def test_summary_compares_only_the_seeds_all_three_biases_have(results, tmp_path):
    write_run(results, "bert_base", "cola", "low", "beft", "v", 3, "mcc", -0.9)  # b_v is one seed ahead mid-sweep
    out = tmp_path / "tables"
    tables.build_all(results, PAPER, out, draw=False)
    row = next(line for line in (out / "summary.md").read_text().splitlines() if "| cola" in line)
    assert render.number(*stats.mean_std([100 * x for x in COLA["v"]])) in row  # seed 3 is not in b_v's mean
    assert "|       3 |" in row and "| yes " in row


def test_summary_without_a_score_uses_the_tasks_main_metric_from_conf(tmp_path):
    root = tmp_path / "runs"
    for bias, values in COLA.items():
        for seed, value in enumerate(values):  # accuracy beside MCC, no score: conf/task/cola.yaml says MCC
            final = {"validation": {"accuracy": 0.9 - value, "mcc": value}}
            write(root, run_id("bert_base", "cola", "low", "beft", bias, seed), status="completed", final=final)
    no_paper = pd.DataFrame(columns=["model", "task", "regime", "value"])
    row = next(line for line in render.summary(run_table(root), no_paper).splitlines() if "| cola" in line)
    assert "| mcc " in row and "| yes " in row


def test_run_times_per_task_and_kind(tmp_path):
    root = tmp_path / "runs"
    for method, bias, seed, wall in (("beft", "v", 0, 540.0), ("beft", "q", 0, 600.0), ("full", None, 0, 1800.0),
                                     ("full", None, 1, 2100.0)):  # fmt: skip
        write_run(root, "minilm", "rte", "low", method, bias, seed, "accuracy", 0.5, time={"wall_s": wall})
    write_run(root, "minilm", "rte", "low", "bitfit", None, 0, "accuracy", 0.0, status="failed")  # not counted
    text = render.run_times(run_table(root))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if "| minilm" in line]
    assert rows == [
        ["minilm", "rte", "low", "b_v / b_q / b_k", "2", "9.5"],
        ["minilm", "rte", "low", "full", "2", "32.5"],  # the failed bitfit run is not counted
    ]
    assert "In all 4 runs, 1.4 hours" in text
