"""Tables from fixture records equal hand-computed means, population stds and paired t-test p-values."""

from __future__ import annotations

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from beft import records
from beft.report import stats, tables
from tests.conftest import REPO

PAPER = REPO / "results" / "paper"
# CoLA low MCC (0-1 scale) per bias and seed; b_v > b_q > b_k by construction
COLA = {"v": [0.40, 0.44, 0.38], "q": [0.30, 0.25, 0.29], "k": [0.05, 0.02, 0.06]}


def write_run(
    root, model, task, regime, label, seed, metric, value, status="completed", variant=None, split="validation"
):
    run = {"model": model, "task": task, "regime": regime, "label": label, "seed": seed, "variant": variant}
    rec = {"status": status, "run": run, "final": {split: {metric: value}} if status == "completed" else {}}
    suffix = f"__{variant}" if variant else ""
    records.write_record(root / model / task / regime / label / f"seed={seed}{suffix}", rec)


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "runs"
    for bias, values in COLA.items():
        for seed, value in enumerate(values):
            write_run(root, "bert_base", "cola", "low", f"beft-{bias}", seed, "mcc", value)
    write_run(root, "bert_base", "stsb", "low", "beft-v", 0, "spearman", 0.7)
    write_run(root, "bert_base", "stsb", "low", "beft-v", 1, "spearman", 0.0, status="failed")
    # a debug variant must never be averaged in
    write_run(root, "bert_base", "cola", "low", "beft-v", 0, "mcc", 0.99, variant="data.num_train=8")
    # MNLI: matched and mismatched from one run
    rec = {"status": "completed", "run": {"model": "bert_base", "task": "mnli", "regime": "low", "label": "beft-v",
           "seed": 0}, "final": {"matched": {"accuracy": 0.61}, "mismatched": {"accuracy": 0.63}}}  # fmt: skip
    records.write_record(root / "bert_base/mnli/low/beft-v/seed=0", rec)
    return root


def test_mean_population_std_and_ttest_match_hand_computation():
    assert stats.mean_std([93.1, 93.6, 93.6]) == pytest.approx((93.4333, 0.2357), abs=1e-4)  # Table 7 / Table 10
    assert stats.mean_std([93.1, 93.6, 93.6, 92.4, 93.2]) == pytest.approx((93.18, 0.44), abs=5e-3)  # Table 7 b_v
    v, q = dict(enumerate(COLA["v"])), dict(enumerate(COLA["q"]))
    d = [a - b for a, b in zip(COLA["v"], COLA["q"], strict=True)]
    t = (sum(d) / 3) / (pd.Series(d).std(ddof=1) / 3**0.5)
    expected_p = 2 * scipy_stats.t.sf(abs(t), df=2)
    result = stats.paired_ttest(v, q)
    assert result["n"] == 3 and result["t"] == pytest.approx(t) and result["p"] == pytest.approx(expected_p)
    assert stats.paired_ttest({0: 1.0}, {0: 2.0})["p"] is None  # one pair: no test


def test_table11_rows(results):
    paper = pd.read_csv(PAPER / "table11_stability_bert_base.csv", dtype=str)
    paper["value"] = pd.to_numeric(paper["value"])
    table = tables.build_table(paper, tables.load_records(results).query("variant.isna()"), tables.MODELS, {})
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


def test_build_all_writes_every_table_summary_and_mnli_splits(results, tmp_path):
    out = tmp_path / "tables"
    written = tables.build_all(results, PAPER, out)
    for n in range(1, 17):
        assert (out / f"table{n:02d}.md").is_file() and (out / f"table{n:02d}.tex").is_file()
    assert (out / "table11.png") in written
    table1 = (out / "table01.md").read_text()
    assert "61.00" in table1 and "63.00" in table1  # MNLI-m and MNLI-mm from one run
    assert "99.00" not in table1  # the variant is not used
    summary = (out / "summary.md").read_text()
    row = next(line for line in summary.splitlines() if "| cola" in line)
    p_vq = stats.paired_ttest(dict(enumerate(COLA["v"])), dict(enumerate(COLA["q"])))["p"]
    assert "| yes " in row and f"{p_vq:.3g}" in row
    assert "0.005; 0.003" in row  # the paper's p-values (Table 8) beside ours
    assert "held in 1 of 1" in summary


def test_analogue_tables_compare_another_model(results, tmp_path):
    minilm = tmp_path / "runs"
    write_run(minilm, "minilm", "rte", "low", "beft-v", 0, "accuracy", 0.6)
    out = tmp_path / "tables"
    tables.build_all(minilm, PAPER, out, ["minilm=bert-base-cased"])
    text = (out / "table03_minilm.md").read_text()
    assert "analogue of bert-base-cased" in text and "60.00" in text
    assert not (out / "table05_minilm.md").exists()  # no BERT-base rows in the OPT table


def test_cli_rejects_unknown_paper_model(tmp_path):
    with pytest.raises(SystemExit):
        tables.main(["--results-dir", str(tmp_path), "--analogue", "minilm=bert-huge"])


# --- decoder tables: OPT-1.3B records as the decoder pipeline writes them (scores 0-1; SQuAD/DROP token F1 with
# exact match beside it; params.permille = trainable / pre-trained total x 1000) ---
OPT_CB = {"v": [0.75, 0.80, 0.77], "q": [0.70, 0.68, 0.73], "k": [0.375, 0.375, 0.375]}  # accuracy
OPT_SQUAD = {"v": [0.79, 0.78, 0.775], "q": [0.69, 0.68, 0.685], "k": [0.24, 0.25, 0.245]}  # f1
PERMILLE = {"beft-v": 0.0374, "beft-q": 0.0374, "beft-k": 0.0374, "lora": 1.1954, "vera": 0.0750, "icl": 0.0}


def write_decoder_run(root, task, label, seed, final, metric, status="completed", model="opt_1_3b", extra=None):
    run = {"model": model, "task": task, "regime": "low", "label": label, "seed": seed, "variant": None}
    rec = {"status": status, "run": run, "final": {"validation": final} if status == "completed" else {},
           "score": {"metric": metric, "split": "validation"}, "params": {"permille": PERMILLE.get(label),
           "percent": None if label not in PERMILLE else PERMILLE[label] / 10, **(extra or {})}}  # fmt: skip
    records.write_record(root / model / task / "low" / label / f"seed={seed}", rec)


@pytest.fixture
def decoder_results(tmp_path):
    root = tmp_path / "runs"
    for bias in "vqk":
        for seed in range(3):
            write_decoder_run(root, "cb", f"beft-{bias}", seed, {"accuracy": OPT_CB[bias][seed]}, "accuracy")
            f1 = OPT_SQUAD[bias][seed]
            write_decoder_run(root, "squad", f"beft-{bias}", seed, {"f1": f1, "exact_match": f1 - 0.2}, "f1")
    write_decoder_run(root, "drop", "beft-v", 0, {"f1": 0.29, "exact_match": 0.25}, "f1")
    write_decoder_run(root, "drop", "beft-v", 1, {}, "f1", status="failed")
    for label, acc in (("lora", 0.936), ("vera", 0.922), ("icl", 0.803)):
        write_decoder_run(root, "sst2", label, 0, {"accuracy": acc}, "accuracy")
    return root


def paper_table(name):
    paper = tables.read_paper(next(PAPER.glob(f"{name}_*.csv")))
    paper["value"] = pd.to_numeric(paper["value"], errors="coerce")
    return paper


def hand_p(a, b):
    d = [x - y for x, y in zip(a, b, strict=True)]
    t = (sum(d) / len(d)) / (pd.Series(d).std(ddof=1) / len(d) ** 0.5)
    return 2 * scipy_stats.t.sf(abs(t), df=len(d) - 1)


def test_every_paper_row_is_kept_even_without_runs():
    for n in range(1, 17):
        paper = paper_table(f"table{n:02d}")
        table = tables.build_table(paper, pd.DataFrame(), tables.MODELS, {})
        assert len(table) == len(paper), n  # rows we cannot fill stay, with what is missing
        assert table["ours"].isna().all()
        assert (table["missing"] != "").sum() == (paper["metric"] != "mean_of_9_columns").sum()


def test_table9_decoder_means_f1_and_paired_ttests(decoder_results):
    table = tables.build_table(paper_table("table09"), tables.load_records(decoder_results), tables.MODELS, {})

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
    runs = tables.load_records(decoder_results)
    t5 = tables.build_table(paper_table("table05"), runs, tables.MODELS, {})
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
    t15 = tables.build_table(paper_table("table15"), runs, tables.MODELS, {})
    assert row(t15, "SST-2", "vera", "n/a", "accuracy")["ours"] == pytest.approx(92.2)
    assert row(t15, "all", "vera", "n/a", "params_permille")["ours"] == pytest.approx(0.075)
    assert "opt_1_3b/sst2/low/dora/seed=0 (missing)" in row(t15, "SST-2", "dora", "n/a", "accuracy")["missing"]


def test_decoder_summary_uses_the_records_score(decoder_results, tmp_path):
    out = tmp_path / "tables"
    tables.build_all(decoder_results, PAPER, out)
    summary = (out / "summary.md").read_text()
    cb = next(line for line in summary.splitlines() if "| cb" in line)
    assert "accuracy" in cb and "| yes " in cb and "0.023; 0.001" in cb  # Table 9's p-values beside ours
    squad = next(line for line in summary.splitlines() if "| squad" in line)
    assert "| f1 " in squad and "78.17 ± 0.62" in squad
    table9 = (out / "table09.md").read_text()
    assert "77.33 ± 2.05" in table9 and "| 0.109 " in table9
    assert (out / "table09.png").is_file()


def test_table14_reshape_and_bias_peft_params(tmp_path):
    root = tmp_path / "runs"
    peft = {"reshape": {"m": 24, "n": 32, "r": 8}, "relative_percent": 58.333, "saving_percent": 41.667}
    for bias, acc in (("v", 0.85), ("q", 0.826)):
        write_run(root, "bert_base", "sst2", "low", f"bias_lora-{bias}", 0, "accuracy", acc)
        rec = records.read_record(root / f"bert_base/sst2/low/bias_lora-{bias}/seed=0")
        rec["params"] = {"bias_peft": peft if bias == "v" else {**peft, "reshape": {"m": 48, "n": 16, "r": 8}}}
        records.write_record(root / f"bert_base/sst2/low/bias_lora-{bias}/seed=0", rec)
    table = tables.build_table(paper_table("table14"), tables.load_records(root), tables.MODELS, {})
    bert = table[table["model"] == "bert_base"].set_index("bias")
    assert bert.loc["b_v", "ours"] == pytest.approx(85.0)
    assert pd.isna(bert.loc["b_q", "ours"])  # run with another (m, n, r): not the paper's row
    assert "reshape (m,n,r)=(48, 16, 8), the paper's is (24, 32, 8)" in bert.loc["b_q", "missing"]
    assert bert.loc["any", "ours"] == pytest.approx(41.667)  # Params Saving % of the b_v run (paper: 42)
    t4 = tables.build_table(paper_table("table04"), tables.load_records(root), tables.MODELS, {})
    params = t4[t4["metric"] == "params_relative_percent"].set_index("method")
    assert params.loc["bias_lora", "ours"] == pytest.approx(58.333)  # Table 4 has no reshape: both runs count
    assert pd.isna(params.loc["bias_ft", "ours"])  # no direct run yet


def test_table1_average_of_the_nine_columns(tmp_path):
    root = tmp_path / "runs"
    metrics = {"sst2": ("accuracy", 0.8), "rte": ("accuracy", 0.6), "qqp": ("f1", 0.7), "qnli": ("accuracy", 0.75),
               "cola": ("mcc", 0.4), "mrpc": ("f1", 0.8), "stsb": ("spearman", 0.7)}  # fmt: skip
    for task, (metric, value) in metrics.items():
        write_run(root, "bert_base", task, "low", "beft-v", 0, metric, value)
    table = tables.build_table(paper_table("table01"), tables.load_records(root), tables.MODELS, {})
    avg = table[(table["task"] == "Avg") & (table["regime"] == "low") & (table["bias"] == "b_v")].iloc[0]
    assert pd.isna(avg["ours"]) and (avg["n"], avg["seeds"]) == (7, 9)  # MNLI-m and -mm missing
    rec = {"status": "completed", "run": {"model": "bert_base", "task": "mnli", "regime": "low", "label": "beft-v",
           "seed": 0}, "final": {"matched": {"accuracy": 0.61}, "mismatched": {"accuracy": 0.63}}}  # fmt: skip
    records.write_record(root / "bert_base/mnli/low/beft-v/seed=0", rec)
    table = tables.build_table(paper_table("table01"), tables.load_records(root), tables.MODELS, {})
    avg = table[(table["task"] == "Avg") & (table["regime"] == "low") & (table["bias"] == "b_v")].iloc[0]
    assert avg["ours"] == pytest.approx((80 + 60 + 70 + 75 + 61 + 63 + 40 + 80 + 70) / 9) and avg["n"] == 9
    assert avg["diff"] == pytest.approx(avg["ours"] - 64.5)


def test_summary_compares_only_the_seeds_all_three_biases_have(results, tmp_path):
    write_run(results, "bert_base", "cola", "low", "beft-v", 3, "mcc", -0.9)  # b_v is one seed ahead mid-sweep
    out = tmp_path / "tables"
    tables.build_all(results, PAPER, out)
    row = next(line for line in (out / "summary.md").read_text().splitlines() if "| cola" in line)
    assert tables._fmt(*stats.mean_std([100 * x for x in COLA["v"]])) in row  # seed 3 is not in b_v's mean
    assert "|       3 |" in row and "| yes " in row


def test_run_times_per_task_and_kind(tmp_path):
    root = tmp_path / "runs"
    for label, seed, wall in (("beft-v", 0, 540.0), ("beft-q", 0, 600.0), ("full", 0, 1800.0), ("full", 1, 2100.0)):
        write_run(root, "minilm", "rte", "low", label, seed, "accuracy", 0.5)
        rec = records.read_record(root / f"minilm/rte/low/{label}/seed={seed}")
        records.write_record(root / f"minilm/rte/low/{label}/seed={seed}", {**rec, "time": {"wall_s": wall}})
    write_run(root, "minilm", "rte", "low", "bitfit", 0, "accuracy", 0.0, status="failed")  # not counted
    text = tables.run_times(tables.load_records(root))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if "| minilm" in line]
    assert rows == [
        ["minilm", "rte", "low", "b_v / b_q / b_k", "2", "9.5"],
        ["minilm", "rte", "low", "full", "2", "32.5"],  # the failed bitfit run is not counted
    ]
    assert "In all 4 runs, 1.4 hours" in text
