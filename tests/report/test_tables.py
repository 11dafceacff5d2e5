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
