"""Appendix C.5: b_v's gain over b_q and b_k with PiSSA / BA-LoRA on the bias, ours beside the paper's."""

from __future__ import annotations

import pytest

from beft.report import gains
from beft.report.lookup import run_table
from tests.report.conftest import PAPER, write_run


def test_gains_in_points_and_relative_percent(tmp_path):
    for bias, values in {"v": [0.90, 0.88], "q": [0.80, 0.76], "k": [0.70, 0.74]}.items():
        for seed, value in enumerate(values):
            write_run(tmp_path, "roberta_base", "sst2", "low", "bias_pissa", bias, seed, "accuracy", value)
    write_run(tmp_path, "roberta_base", "sst2", "low", "bias_pissa", "q", 2, "accuracy", 0.1)  # no b_v seed 2
    table = gains.gains(gains.read(PAPER), run_table(tmp_path))
    assert list(table["model"].unique()) == ["roberta_base"]
    pissa = table[table["method"] == "bias_pissa"].set_index("comparison")
    assert pissa.loc["b_v vs b_q", "paper_gain"] == 15.7 and pissa.loc["b_v vs b_q", "seeds"] == 2
    assert pissa.loc["b_v vs b_q", "points"] == pytest.approx(100 * (0.89 - 0.78))
    assert pissa.loc["b_v vs b_q", "relative"] == pytest.approx(100 * (0.89 - 0.78) / 0.78)
    assert pissa.loc["b_v vs b_k", "points"] == pytest.approx(100 * (0.89 - 0.72))
    balora = table[table["method"] == "bias_balora"]
    assert balora["points"].isna().all() and "roberta_base/sst2/low/bias_balora-v" in balora["missing"].iloc[0]
    text = gains.render(table)
    assert f"+{100 * 0.11:.1f} pts / +{100 * 0.11 / 0.78:.1f} % [n=2] (paper +15.7 %)" in text
    assert "missing (paper +13.9 %)" in text and "- roberta_base/sst2/low/bias_balora-k" in text
    header = next(line for line in text.splitlines() if line.startswith("|  "))
    assert header.index("b_v vs b_q") < header.index("b_v vs b_k")  # the paper's order


def test_an_analogue_model_with_such_runs_gets_its_own_rows(tmp_path):
    write_run(tmp_path, "minilm", "sst2", "low", "bias_balora", "v", 0, "accuracy", 0.8)
    table = gains.gains(gains.read(PAPER), run_table(tmp_path))
    assert list(table["model"].unique()) == ["roberta_base", "minilm"]
