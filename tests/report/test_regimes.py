"""The across-regimes figure finds ranking and run records by their run coordinates and lists what is missing."""

from __future__ import annotations

import pytest

from beft import records
from beft.report import regimes
from tests.report.conftest import run_id, write


def ranking(regime: str, v: float, q: float, k: float, variant=None) -> records.RankingRecord:
    mean = {"v": v, "q": q, "k": k}
    run = records.RunId(model="minilm", task="sst2", regime=regime, seed=0, variant=variant)
    return records.RankingRecord(status="completed", run=run, approaches={a: {"mean": mean} for a in
                                 ("angle", "magnitude", "fisher")})  # fmt: skip


def test_collect_and_draw(tmp_path):
    records.write(records.run_folder(tmp_path, "minilm/sst2/low/ranking/seed=0"), ranking("low", 0.3, 0.1, 0.0))
    for role, score in {"v": 0.8, "q": 0.7, "k": 0.6}.items():
        run = run_id("minilm", "sst2", "low", "beft", role, 0)
        write(tmp_path, run, status="completed", score=records.Score(final=score, metric="accuracy"))
    write(tmp_path, run_id("minilm", "sst2", "medium", "beft", "v", 0), status="failed", error="nan loss")
    # variants (changed hyperparameters) never stand in for the paper's runs
    variant = "data.num_train=8"
    write(tmp_path, run_id("minilm", "sst2", "medium", "beft", "q", 0, variant), status="completed",
          score=records.Score(final=0.1, metric="accuracy"))  # fmt: skip
    records.write(records.run_folder(tmp_path, "minilm/sst2/medium/ranking/seed=0", variant),
                  ranking("medium", 0.0, 0.0, 0.0, variant))  # fmt: skip
    found = regimes.collect(tmp_path, "minilm", "sst2", 0, ["low", "medium"])
    assert found["importance"]["angle"] == {"low": {"q": 0.1, "k": 0.0, "v": 0.3}}
    assert found["scores"] == {"low": {"q": 0.7, "k": 0.6, "v": 0.8}}
    assert found["metric"] == "accuracy"
    assert found["missing"] == ["medium/ranking", "medium/beft-q", "medium/beft-k", "medium/beft-v (failed)"]
    out = regimes.main(["--task", "sst2", "--regimes", "low", "medium", "--results-dir", str(tmp_path),
                        "--out", str(tmp_path / "fig.png")])  # fmt: skip
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_unknown_regime_is_rejected(tmp_path):
    with pytest.raises(SystemExit):
        regimes.main(["--task", "sst2", "--regimes", "tiny", "--results-dir", str(tmp_path)])
