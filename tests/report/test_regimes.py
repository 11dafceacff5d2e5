"""The across-regimes figure reads ranking and run records and lists what is missing."""

from __future__ import annotations

import pytest

from beft import records
from beft.report import regimes


def ranking(v: float, q: float, k: float) -> dict:
    mean = {"v": v, "q": q, "k": k}
    return {"status": "completed", "approaches": {a: {"mean": mean} for a in ("angle", "magnitude", "fisher")}}


def test_collect_and_draw(tmp_path):
    base = tmp_path / "minilm" / "sst2"
    records.write_record(base / "low" / "ranking" / "seed=0", ranking(0.3, 0.1, 0.0), records.RANKING_FILE)
    for role, score in {"v": 0.8, "q": 0.7, "k": 0.6}.items():
        records.write_record(
            base / "low" / f"beft-{role}" / "seed=0",
            {"status": "completed", "score": {"final": score, "metric": "accuracy"}},
        )
    records.write_record(base / "medium" / "beft-v" / "seed=0", {"status": "failed", "error": "nan loss"})
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
