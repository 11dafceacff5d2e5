"""Each paper row's cell from fixture records: means, population stds, paired t-tests, params and what is missing."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from beft.report import stats
from beft.report.cells import build_table
from beft.report.lookup import run_table
from beft.report.names import paper_models
from tests.report.conftest import COLA, PAPER, paper_table, write_mnli, write_run

MODELS = paper_models()


def hand_p(a, b):
    d = [x - y for x, y in zip(a, b, strict=True)]
    t = (sum(d) / len(d)) / (pd.Series(d).std(ddof=1) / len(d) ** 0.5)
    return 2 * scipy_stats.t.sf(abs(t), df=len(d) - 1)


def test_table11_rows(results):
    paper = pd.read_csv(PAPER / "table11_stability_bert_base.csv", dtype=str)
    paper["value"] = pd.to_numeric(paper["value"])
    table = build_table(paper, run_table(results).query("variant.isna()"), MODELS, {})
    cola_v = table[(table["task"] == "CoLA") & (table["bias"] == "b_v")].iloc[0]
    mean, std = stats.mean_std([100 * x for x in COLA["v"]])
    assert (cola_v["ours"], cola_v["ours_std"], cola_v["n"]) == (pytest.approx(mean), pytest.approx(std), 3)
    assert cola_v["diff"] == pytest.approx(mean - 40.2)
    stsb_v = table[(table["task"] == "STS-B") & (table["bias"] == "b_v")].iloc[0]
    assert stsb_v["ours"] == pytest.approx(70.0) and stsb_v["n"] == 1
    assert "bert_base/stsb/low/beft-v/seed=1 (failed)" in stsb_v["missing"]
    assert "bert_base/stsb/low/beft-v/seed=2 (missing)" in stsb_v["missing"]
    sst2 = table[table["task"] == "SST-2"]
    assert sst2["ours"].isna().all() and (sst2["n"] == 0).all()


def test_every_paper_row_is_kept_even_without_runs():
    for n in range(1, 17):
        paper = paper_table(f"table{n:02d}")
        table = build_table(paper, pd.DataFrame(), MODELS, {})
        assert len(table) == len(paper), n  # rows we cannot fill stay, with what is missing
        assert table["ours"].isna().all()
        assert (table["missing"] != "").sum() == (paper["metric"] != "mean_of_9_columns").sum()


def test_table9_decoder_means_f1_and_paired_ttests(decoder_results):
    table = build_table(paper_table("table09"), run_table(decoder_results), MODELS, {})

    def row(task, bias, metric):
        return table[(table["task"] == task) & (table["bias"] == bias) & (table["metric"] == metric)].iloc[0]

    cb_v = row("CB", "b_v", "accuracy")  # hand: (75 + 80 + 77) / 3 = 77.333, population std 2.0548
    assert (cb_v["ours"], cb_v["ours_std"], cb_v["n"]) == (pytest.approx(77.3333, abs=1e-4), pytest.approx(2.0548,
                                                            abs=1e-4), 3)  # fmt: skip
    assert cb_v["diff"] == pytest.approx(77.3333 - 77.3, abs=1e-4)
    squad_v = row("SQuAD", "b_v", "f1")  # F1, not exact match: (79 + 78 + 77.5) / 3 = 78.1667, std 0.6236
    assert (squad_v["ours"], squad_v["ours_std"]) == (pytest.approx(78.1667, abs=1e-4), pytest.approx(0.6236, abs=1e-4))
    p_vq = row("CB", "b_v vs b_q", "p_value")
    assert p_vq["ours"] == pytest.approx(hand_p([75, 80, 77], [70, 68, 73])) and p_vq["n"] == 3
    # d = 5, 12, 4: t = 7 / (sqrt(19) / sqrt(3)) = 2.7815; df 2: p = 1 - t / sqrt(t^2 + 2) = 0.1086
    assert p_vq["ours"] == pytest.approx(0.1086, abs=1e-4)
    p_qk = row("SQuAD", "b_q vs b_k (inferred)", "p_value")
    assert p_qk["ours"] == pytest.approx(hand_p([69, 68, 68.5], [24, 25, 24.5]))
    drop_v = row("DROP", "b_v", "f1")
    assert drop_v["ours"] == pytest.approx(29.0) and drop_v["n"] == 1
    assert "opt_1_3b/drop/low/beft-v/seed=1 (failed)" in drop_v["missing"]
    assert "opt_1_3b/drop/low/beft-v/seed=2 (missing)" in drop_v["missing"]
    drop_p = row("DROP", "b_v vs b_q", "p_value")
    assert pd.isna(drop_p["ours"]) and "opt_1_3b/drop/low/beft-q/seed=0 (missing)" in drop_p["missing"]


def test_table5_and_15_params_permille_and_baselines(decoder_results):
    runs = run_table(decoder_results)
    t5 = build_table(paper_table("table05"), runs, MODELS, {})
    opt = t5[t5["model"] == "opt_1_3b"]

    def row(table, task, method, bias, metric):
        return table[(table["task"] == task) & (table["method"] == method) & (table["bias"] == bias)
                     & (table["metric"] == metric)].iloc[0]  # fmt: skip

    params_v = row(opt, "all", "bias_ft", "b_v", "params_permille")  # any task's record, params.permille as is
    assert params_v["ours"] == pytest.approx(0.0374) and params_v["n"] == 1
    assert row(opt, "all", "lora", "n/a", "params_permille")["ours"] == pytest.approx(1.1954)
    assert row(opt, "all", "icl", "n/a", "params_permille")["ours"] == 0.0
    assert row(opt, "SST-2", "lora", "n/a", "accuracy")["ours"] == pytest.approx(93.6)
    assert row(opt, "SST-2", "icl", "n/a", "accuracy")["ours"] == pytest.approx(80.3)  # seeds "eval subset seed 0"
    prefix = row(opt, "all", "prefix", "n/a", "params_permille")
    assert pd.isna(prefix["ours"]) and "opt_1_3b/<any task>/low/prefix/seed=0 (missing)" in prefix["missing"]
    assert row(opt, "CB", "bias_ft", "b_k", "accuracy")["ours"] == pytest.approx(37.5)
    assert t5[t5["model"] == "opt_6_7b"]["ours"].isna().all()
    t15 = build_table(paper_table("table15"), runs, MODELS, {})
    assert row(t15, "SST-2", "vera", "n/a", "accuracy")["ours"] == pytest.approx(92.2)
    assert row(t15, "all", "vera", "n/a", "params_permille")["ours"] == pytest.approx(0.075)
    assert "opt_1_3b/sst2/low/dora/seed=0 (missing)" in row(t15, "SST-2", "dora", "n/a", "accuracy")["missing"]


def test_table14_reshape_and_bias_peft_params(tmp_path):
    root = tmp_path / "runs"
    peft = {"reshape": {"m": 24, "n": 32, "r": 8}, "relative_percent": 58.333, "saving_percent": 41.667}
    for bias, acc in (("v", 0.85), ("q", 0.826)):
        bias_peft = peft if bias == "v" else {**peft, "reshape": {"m": 48, "n": 16, "r": 8}}
        params = {"percent": 0.35, "permille": 3.5, "bias_peft": bias_peft}
        write_run(root, "bert_base", "sst2", "low", "bias_lora", bias, 0, "accuracy", acc, params=params)
    table = build_table(paper_table("table14"), run_table(root), MODELS, {})
    bert = table[table["model"] == "bert_base"].set_index("bias")
    assert bert.loc["b_v", "ours"] == pytest.approx(85.0)
    assert pd.isna(bert.loc["b_q", "ours"])  # run with another (m, n, r): not the paper's row
    assert "reshape (m,n,r)=(48, 16, 8), the paper's is (24, 32, 8)" in bert.loc["b_q", "missing"]
    assert bert.loc["any", "ours"] == pytest.approx(41.667)  # Params Saving % of the b_v run (paper: 42)
    t4 = build_table(paper_table("table04"), run_table(root), MODELS, {})
    params = t4[t4["metric"] == "params_relative_percent"].set_index("method")
    assert params.loc["bias_lora", "ours"] == pytest.approx(58.333)  # Table 4 has no reshape: both runs count
    assert pd.isna(params.loc["bias_ft", "ours"])  # no direct run yet


def test_table1_average_of_the_nine_columns(tmp_path):
    root = tmp_path / "runs"
    metrics = {"sst2": ("accuracy", 0.8), "rte": ("accuracy", 0.6), "qqp": ("f1", 0.7), "qnli": ("accuracy", 0.75),
               "cola": ("mcc", 0.4), "mrpc": ("f1", 0.8), "stsb": ("spearman", 0.7)}  # fmt: skip
    for task, (metric, value) in metrics.items():
        write_run(root, "bert_base", task, "low", "beft", "v", 0, metric, value)
    table = build_table(paper_table("table01"), run_table(root), MODELS, {})
    avg = table[(table["task"] == "Avg") & (table["regime"] == "low") & (table["bias"] == "b_v")].iloc[0]
    assert pd.isna(avg["ours"]) and (avg["n"], avg["seeds"]) == (7, 9)  # MNLI-m and -mm missing
    write_mnli(root)
    table = build_table(paper_table("table01"), run_table(root), MODELS, {})
    avg = table[(table["task"] == "Avg") & (table["regime"] == "low") & (table["bias"] == "b_v")].iloc[0]
    assert avg["ours"] == pytest.approx((80 + 60 + 70 + 75 + 61 + 63 + 40 + 80 + 70) / 9) and avg["n"] == 9
    assert avg["diff"] == pytest.approx(avg["ours"] - 64.5)


def test_the_ranking_target_is_daggered(results):
    table = build_table(paper_table("table01"), run_table(results), MODELS, {("bert_base", "cola", "low", 0): "v"})
    cola = table[(table["task"] == "CoLA") & (table["regime"] == "low") & (table["metric"] == "mcc")]
    assert dict(zip(cola["bias"], cola["selected"], strict=True)) == {"b_v": "†", "b_q": "", "b_k": ""}
