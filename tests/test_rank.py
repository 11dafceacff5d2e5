"""End to end: `python -m beft.rank` on the real MiniLM with a small real SST-2 subset writes the ranking record,
the BitFit run record and one heat-map per approach; a rerun skips."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from beft.importance import APPROACHES
from tests.conftest import REPO

PNG = b"\x89PNG\r\n\x1a\n"
SEED = "seed=0__data.num_train=32,trainer.args.num_train_epochs=1"  # a variant: hyperparameters were overridden


@pytest.fixture(scope="module")
def ranked(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("rank")
    cmd = [sys.executable, "-m", "beft.rank", "model=minilm", "task=sst2", "regime=low", "seed=0",
           "data.num_train=32", "trainer.args.num_train_epochs=1", f"data.dir={data_dir}",
           f"results_dir={tmp / 'runs'}", f"data.cache_dir={tmp / 'cache'}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp / "runs" / "minilm" / "sst2" / "low", cmd, proc


@pytest.mark.slow
def test_rank_writes_record_and_heatmaps(ranked):
    base, _, proc = ranked
    record = json.loads((base / "ranking" / SEED / "ranking.json").read_text())
    assert record["status"] == "completed" and record["bitfit_run"] == "minilm/sst2/low/bitfit/seed=0"
    assert set(record["approaches"]) == set(APPROACHES)
    for name, summary in record["approaches"].items():
        assert set(summary["per_layer"]) >= {"q", "k", "v"}
        assert all(len(values) == 6 for values in summary["per_layer"].values())  # MiniLM has 6 layers
        assert summary["ranking_qkv"][0] == summary["target"] and sorted(summary["ranking_qkv"]) == ["k", "q", "v"]
        png = base / "ranking" / SEED / f"heatmap_{name}.png"
        assert png.read_bytes()[:8] == PNG
    assert record["target"] == record["approaches"]["angle"]["target"]
    assert record["approaches"]["angle"]["ranking_qkv"][-1] == "k"  # b_k barely moves (docs/method.md §4.1)
    bitfit = json.loads((base / "bitfit" / SEED / "record.json").read_text())
    assert bitfit["status"] == "completed" and len(bitfit["bias_change"]) == 8 * 6
    assert "target bias b_" in proc.stdout


@pytest.mark.slow
def test_rank_rerun_skips(ranked):
    base, cmd, _ = ranked
    before = (base / "ranking" / SEED / "ranking.json").read_text()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "skipping" in proc.stderr + proc.stdout
    assert (base / "ranking" / SEED / "ranking.json").read_text() == before
