"""End to end: the real MiniLM fine-tuned on a small subset of real RTE writes a valid record; a rerun skips."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from beft import records
from beft.spec import RunSpec
from tests.conftest import REPO, run_config

SMALL = ("data.num_train=24", "trainer.args.num_train_epochs=1")
# hyperparameter overrides make a variant: its own folder, never mistaken for the paper's run (beft/sweeps/variants.py)
VARIANT = "seed=0__data.num_train=24,trainer.args.num_train_epochs=1"
MINILM_BV = 6 * 384 + 384 + 2 * 384 + 2  # six b_v vectors + pooler bias + 2-label head


@pytest.fixture(scope="module")
def bv_run(tmp_path_factory, data_dir):
    """One real run through the CLI, as a user types it."""
    tmp = tmp_path_factory.mktemp("e2e")
    cmd = [
        sys.executable,
        "-m",
        "beft.train",
        "model=minilm",
        "task=rte",
        "regime=low",
        "bias=v",
        *SMALL,
        f"data.dir={data_dir}",
        f"results_dir={tmp / 'runs'}",
        f"data.cache_dir={tmp / 'cache'}",
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, cmd, proc


@pytest.mark.slow
def test_cli_run_writes_a_valid_record(bv_run):
    tmp, _, proc = bv_run
    folder = tmp / "runs" / "minilm" / "rte" / "low" / "beft-v" / VARIANT
    record = json.loads((folder / "record.json").read_text())
    assert record["status"] == "completed"
    assert record["run"] == {
        "name": "minilm/rte/low/beft-v/seed=0",
        "model": "minilm",
        "task": "rte",
        "regime": "low",
        "method": "beft",
        "bias": "v",
        "label": "beft-v",
        "seed": 0,
        "variant": "data.num_train=24,trainer.args.num_train_epochs=1",
    }
    assert record["params"]["trainable"] == MINILM_BV
    assert record["params"]["total"] == 22_713_986
    assert record["params"]["trainable_tensors"][-3:] == [
        "bert.pooler.dense.bias",
        "classifier.weight",
        "classifier.bias",
    ]
    assert record["data"]["num_train"] == 24 and record["data"]["eval_rows"] == {"validation": 277}
    assert [e["epoch"] for e in record["epochs"]] == [1]
    assert 0.0 <= record["score"]["final"] <= 1.0 and record["score"]["metric"] == "accuracy"
    assert record["score"]["final"] == record["epochs"][-1]["validation"]["accuracy"]
    assert record["config"]["trainer"]["args"]["learning_rate"] == 1e-3
    assert record["environment"]["packages"]["transformers"]
    assert record["time"]["wall_s"] > 0 and record["memory"]["peak_rss_mb"] > 0
    assert "record:" in proc.stdout and str(folder / "record.json") in proc.stdout
    assert not (folder / "trainer").exists()


@pytest.mark.slow
def test_rerun_skips_the_completed_run(bv_run):
    tmp, cmd, _ = bv_run
    path = tmp / "runs" / "minilm" / "rte" / "low" / "beft-v" / VARIANT / "record.json"
    saved = [path, *sorted((path.parent / ".hydra").glob("*.yaml"))]
    assert len(saved) == 4  # record.json + Hydra's config, hydra and overrides files
    before = [p.read_text() for p in saved]
    # an override outside the run's identity lands in the same folder; the finished run's files must stay
    rerun = [*cmd, "trainer.args.disable_tqdm=true"]
    proc = subprocess.run(rerun, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0
    assert "skipping" in proc.stderr + proc.stdout
    assert [p.read_text() for p in saved] == before


@pytest.mark.slow
def test_runs_of_one_seed_are_paired_and_deterministic(bv_run, compose_cfg, data_dir):
    """b_q on the same seed trains on the same subset; the same config twice gives identical metrics."""
    tmp, _, _ = bv_run
    bv = json.loads((tmp / "runs" / "minilm/rte/low/beft-v" / VARIANT / "record.json").read_text())
    cfg = compose_cfg("bias=q", *SMALL, f"data.dir={data_dir}")
    bq = run_config(cfg)
    assert bq["data"]["subset_sha256"] == bv["data"]["subset_sha256"]
    assert bq["params"]["trainable"] == MINILM_BV
    again = run_config(compose_cfg("bias=q", "force=true", *SMALL, f"data.dir={data_dir}"))
    assert again["epochs"] == bq["epochs"] and again["data"] == bq["data"]  # same metrics, same training subset
    sources = {"seed", "torch_python_numpy", "trainer", "trainer_shuffle"}  # every random source and its seed
    assert {k: bq["seeds"][k] for k in sources} == dict.fromkeys(sources, 0) and bq["seeds"]["method"] is None
    assert bq["seeds"]["subset"] == "numpy.random.RandomState(0).permutation(train_rows)[:num_train]"
    other_seed = run_config(compose_cfg("bias=q", "seed=1", *SMALL, f"data.dir={data_dir}"))
    assert other_seed["data"]["subset_sha256"] != bq["data"]["subset_sha256"]
    assert other_seed["epochs"][0]["train_loss"] != bq["epochs"][0]["train_loss"]
    assert {k: other_seed["seeds"][k] for k in sources} == dict.fromkeys(sources, 1)
    assert records.completed_record(RunSpec.from_config(cfg).folder) is not None
