"""Paired tests on examples from saved predictions: exact McNemar, the paired bootstrap and the summary's Holm."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from beft import predictions, records
from beft.report import paired, render
from beft.report.lookup import run_table
from beft.training import metrics
from tests.conftest import write_record
from tests.report.conftest import run_id


def test_mcnemar_is_the_exact_binomial_test_on_the_discordant_examples():
    gold = [1, 0, 1, 1, 0, 1, 0, 1, 1, 0]
    a = [1, 0, 1, 1, 0, 1, 0, 1, 0, 1]  # right on 8
    b = [0, 1, 0, 1, 0, 0, 0, 1, 0, 1]  # right on 4; a alone right on 4 examples, b alone on 0
    result = paired.mcnemar(gold, a, b)
    assert result["discordant"] == "4/0" and result["delta"] == pytest.approx(0.4)
    assert result["p"] == pytest.approx(2 * 0.5**4)  # two-sided exact: 2 * P(X >= 4 | n = 4, 1/2) = 0.125
    assert paired.mcnemar(gold, a, a)["p"] == 1.0


@pytest.mark.parametrize("metric", ["f1", "f1_macro", "mcc"])
def test_vectorised_metrics_equal_the_training_metrics(metric):
    rng = np.random.default_rng(1)
    gold, pred = rng.integers(0, 3 if metric == "f1_macro" else 2, size=(2, 200))
    assert paired.BOOTSTRAP[metric](gold, pred) == pytest.approx(metrics.METRICS[metric](pred, gold))


def test_vectorised_spearman_equals_scipy():
    rng = np.random.default_rng(2)
    gold, scores = rng.normal(size=(2, 100))
    assert paired.spearman(gold, scores) == pytest.approx(scipy_stats.spearmanr(scores, gold).statistic)


def test_bootstrap_p_is_small_for_a_clear_difference_and_one_for_none():
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 2, size=300)
    good = np.where(rng.random(300) < 0.9, gold, 1 - gold)
    bad = np.where(rng.random(300) < 0.55, gold, 1 - gold)
    clear = paired.bootstrap("mcc", gold, good, bad, resamples=500)
    assert clear["delta"] == pytest.approx(metrics.mcc(good, gold) - metrics.mcc(bad, gold))
    assert clear["p"] == pytest.approx(2 / 501)  # no resample crosses 0: the smallest p of 500 resamples
    assert paired.bootstrap("mcc", gold, good, good, resamples=200)["p"] == 1.0
    assert paired.bootstrap("mcc", gold, good, bad, resamples=500) == clear  # seeded: the same p every time


def test_compare_matches_examples_by_id_and_uses_the_regression_score():
    rows_a = [{"id": i, "gold": g, "prediction": g, "score": float(g)} for i, g in enumerate([0.0, 1.0, 2.0, 3.0])]
    rows_b = [{"id": i, "gold": g, "prediction": 3 - g, "score": 3.0 - g} for i, g in enumerate([0.0, 1.0, 2.0])]
    result = paired.compare("spearman", rows_a, rows_b[::-1])
    assert result["n"] == 3 and result["delta"] == pytest.approx(2.0)  # 1 - (-1) on the three shared ids
    assert paired.compare("exact_match", rows_a, rows_b) is None  # generated answers: no test here


def write_with_predictions(root, bias, seed, correct):
    """A CoLA run whose first ``correct`` of 40 validation examples are right, with its predictions file."""
    run = run_id("minilm", "cola", "low", "beft", bias, seed)
    folder = records.run_folder(root, run.name)
    rows = [{"id": i, "gold": i % 2, "prediction": i % 2 if i < correct else 1 - i % 2, "probs": [0.5, 0.5]}
            for i in range(40)]  # fmt: skip
    path = predictions.write(folder, "validation", rows)
    write_record(folder, {"status": "completed", "run": vars(run), "predictions": {"validation": path},
                          "score": {"metric": "accuracy", "split": "validation", "final": correct / 40},
                          "final": {"validation": {"accuracy": correct / 40}}})  # fmt: skip


def test_example_tests_from_records_with_holm(tmp_path):
    for seed in (0, 1):
        for bias, correct in (("v", 36), ("q", 30 + seed), ("k", 20)):
            write_with_predictions(tmp_path, bias, seed, correct)
    run = run_id("minilm", "cola", "low", "beft", "v", 2)  # an old record without predictions: not tested
    write_record(records.run_folder(tmp_path, run.name), {"status": "completed", "run": vars(run),
                                                          "final": {"validation": {"accuracy": 0.9}}})  # fmt: skip
    tests = paired.example_tests(run_table(tmp_path))
    assert list(zip(tests["seed"], tests["comparison"], strict=True)) == [
        (0, "b_v vs b_q"), (0, "b_q vs b_k"), (1, "b_v vs b_q"), (1, "b_q vs b_k")]  # fmt: skip
    first = tests.iloc[0]  # v right on 0-35, q on 0-29: 6 discordant, all for v
    assert first["test"] == "McNemar (exact)" and first["discordant"] == "6/0" and first["p"] == pytest.approx(2 / 64)
    # p = 2/64, 2/1024 (10/0), 2/32 (5/0), 2/2048 (11/0); Holm: x2, x3, x1, x4, then made monotone
    assert tests["p"].tolist() == pytest.approx([2 / 64, 2 / 1024, 2 / 32, 2 / 2048])
    assert tests["p_holm"].tolist() == pytest.approx([0.0625, 6 / 1024, 0.0625, 8 / 2048])
    text = "\n".join(render.example_section(tests))
    assert "Holm's correction across the 4 tests" in text and "McNemar" in text


def test_summary_says_when_no_predictions_exist(tmp_path):
    assert "no test on examples" in "\n".join(render.example_section(paired.example_tests(run_table(tmp_path))))
