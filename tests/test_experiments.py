"""Every paper experiment composes and expands to the paper's grid; a submitit_local sweep runs and a rerun skips."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from tests.conftest import CONF_DIR, REPO

# experiment -> (entry config, number of jobs, what every job must have)
EXPERIMENTS = {
    "table1": ("train", 8 * 3 * 3, {"model.name": "bert_base", "method.name": "beft"}),
    "table1_rank": ("rank", 8 * 3, {"model.name": "bert_base", "method.name": "bitfit"}),
    "table2": ("train", 4 * 3, {"model.name": "bert_base", "task.name": "rte", "regime.name": "low"}),
    "table3": ("train", 3 * 4 * 3, {"regime.name": "low", "method.name": "beft"}),
    "table8": ("train", 2 * 3 * 3, {"model.name": "bert_base", "regime.name": "low"}),
    "table11": ("train", 3 * 3 * 3, {"model.name": "bert_base", "regime.name": "low"}),
    "table12": ("train", 2 * 2 * 3 * 3, {"regime.name": "low", "method.name": "beft"}),
    "fig4": ("train", 3 * 4 * 3, {"model.name": "bert_base"}),
    "fig4_rank": ("rank", 3 * 4, {"model.name": "bert_base"}),
}


def expand(entry: str, experiment: str) -> list:
    """The jobs Hydra's basic sweeper would launch, each composed."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(entry, overrides=[f"experiment={experiment}"], return_hydra_config=True)
        params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
        batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)
        jobs = [job for batch in batches for job in batch]
        return [compose(entry, overrides=[f"experiment={experiment}", *job]) for job in jobs]


def test_every_experiment_file_is_tested():
    assert sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")) == sorted(EXPERIMENTS)


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_experiment_composes_to_the_paper_grid(experiment):
    entry, n_jobs, fixed = EXPERIMENTS[experiment]
    jobs = expand(entry, experiment)
    assert len(jobs) == n_jobs
    names = {job.rank.name if entry == "rank" else job.run_name for job in jobs}
    assert len(names) == n_jobs  # job output folders never collide
    for job in jobs:
        assert job.experiment_name == experiment
        for key, value in fixed.items():
            node = job
            for part in key.split("."):
                node = node[part]
            assert node == value


def test_table2_methods_and_learning_rates():
    jobs = expand("train", "table2")
    lrs = {(j.method.name, j.trainer.args.learning_rate) for j in jobs}
    assert lrs == {("beft", 1e-3), ("rand_uniform", 1e-3), ("bitfit", 1e-3), ("full", 1e-5)}
    assert {j.seed for j in jobs} == {0, 1, 2}


def test_slurm_launcher_settings_compose():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["hydra/launcher=slurm"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    for key in ("partition", "timeout_min", "cpus_per_task", "gpus_per_node", "mem_gb", "array_parallelism"):
        assert key in launcher


@pytest.mark.slow
def test_submitit_local_sweep_runs_and_rerun_skips(tmp_path, data_dir):
    cmd = [sys.executable, "-m", "beft.train", "-m", "hydra/launcher=submitit_local", "task=rte", "bias=v,q",
           "data.num_train=8", "trainer.args.num_train_epochs=1", "trainer.args.per_device_eval_batch_size=128",
           f"data.dir={data_dir}", f"results_dir={tmp_path / 'runs'}", f"data.cache_dir={tmp_path / 'cache'}",
           "hydra.launcher.timeout_min=20"]  # fmt: skip
    first = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    found = sorted((tmp_path / "runs").rglob("record.json"))
    assert [p.parent.parent.name for p in found] == ["beft-q", "beft-v"]
    assert all(json.loads(p.read_text())["status"] == "completed" for p in found)
    before = [p.read_text() for p in found]
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [p.read_text() for p in sorted((tmp_path / "runs").rglob("record.json"))] == before
    logs = "".join(p.read_text() for p in (tmp_path / "runs").rglob("*.log"))
    assert logs.count("skipping") >= 2


@pytest.mark.slow
def test_wandb_offline_run_has_group_and_tags(tmp_path, data_dir):
    cmd = [sys.executable, "-m", "beft.train", "logger=wandb", "experiment_name=table2", "data.num_train=8",
           "trainer.args.num_train_epochs=1", f"data.dir={data_dir}", f"results_dir={tmp_path / 'runs'}",
           f"data.cache_dir={tmp_path / 'cache'}"]  # fmt: skip
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (record_path,) = (tmp_path / "runs").rglob("record.json")
    tracking = json.loads(record_path.read_text())["tracking"]
    assert tracking["mode"] == "offline" and tracking["group"] == "table2"
    assert set(tracking["tags"]) >= {"model=minilm", "task=rte", "regime=low", "method=beft", "bias=v", "seed=0"}
    (run_file,) = record_path.parent.rglob(f"run-{tracking['id']}.wandb")
    data = run_file.read_bytes()  # the run's protobuf records carry the group and tags as UTF-8 strings
    assert b"table2" in data and b"task=rte" in data and b"method=beft" in data
