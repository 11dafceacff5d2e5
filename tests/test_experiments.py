"""Every paper experiment composes and expands to the paper's grid and covers every run the paper tables need; a
submitit_local sweep runs and a rerun skips."""

from __future__ import annotations

import copy
import functools
import json
import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser

from beft import config
from beft.report import tables
from beft.spec import RunSpec
from tests.conftest import CONF_DIR, REPO

# experiment -> (entry config, number of jobs, what every job must have)
DECODER_TASKS = 11  # sst2, rte, cb, boolq, wsc, wic, multirc, copa, record, squad, drop
EXPERIMENTS = {
    "table1": ("train", 8 * 3 * 3, {"model.name": "bert_base", "method.name": "beft"}),
    "table1_rank": ("rank", 8 * 3, {"model.name": "bert_base", "method.name": "bitfit"}),
    "table2": ("train", 4 * 3, {"model.name": "bert_base", "task.name": "rte", "regime.name": "low"}),
    "table3": ("train", 3 * 4 * 3, {"regime.name": "low", "method.name": "beft"}),
    "table4": ("train", 4 * 3, {"model.name": "bert_base", "task.name": "sst2", "regime.name": "low"}),
    "table5": ("train", 2 * DECODER_TASKS * 3, {"regime.name": "low", "method.name": "beft", "model.kind": "decoder"}),
    "table5_baselines": ("train", 2 * DECODER_TASKS * 4, {"regime.name": "low", "model.kind": "decoder"}),
    "table6": ("train", 3 * 3 * 3, {"model.name": "llama2_7b", "method.name": "beft", "model.add_bias": True}),
    "table6_baselines": ("train", 3 * 2 * 3, {"model.name": "llama2_7b", "regime.name": "low"}),
    "table7": ("train", 2 * 5, {"model.name": "opt_1_3b", "task.name": "sst2", "method.name": "beft"}),
    "table8": ("train", 2 * 3 * 3, {"model.name": "bert_base", "regime.name": "low"}),
    "table8_sst2": ("train", 3 * 10, {"model.name": "bert_base", "task.name": "sst2", "method.name": "beft"}),
    "table9": ("train", 3 * 3 * 3, {"model.name": "opt_1_3b", "regime.name": "low", "method.name": "beft"}),
    "table10": ("train", 2 * DECODER_TASKS * 3 * 3, {"regime.name": "low", "method.name": "beft"}),
    "table11": ("train", 3 * 3 * 3, {"model.name": "bert_base", "regime.name": "low"}),
    "table12": ("train", 2 * 2 * 3 * 3, {"regime.name": "low", "method.name": "beft"}),
    "table13": ("train", 3, {"model.name": "bert_base", "task.name": "sst2", "method.name": "bias_vera1d"}),
    "table14": ("train", 3 * 3, {"task.name": "sst2", "regime.name": "low", "method.name": "bias_lora"}),
    "table15": ("train", 3 * 4, {"model.name": "opt_1_3b", "regime.name": "low", "bias.name": "v"}),
    "table16": ("train", 2 * 3, {"task.name": "sst2", "method.name": "beft", "model.add_bias": True}),
    "fig4": ("train", 3 * 4 * 3, {"model.name": "bert_base"}),
    "fig4_rank": ("rank", 3 * 4, {"model.name": "bert_base"}),
    "appendix_c5": (
        "train",
        2 * 3,
        {
            "model.name": "roberta_base",
            "task.name": "sst2",
            "regime.name": "low",
            "trainer.args.num_train_epochs": 50,
            "trainer.args.learning_rate": 4e-4,
        },
    ),
    "appendix_c7": ("train", 4 * 3, {"model.name": "xlmr_base", "regime.name": "low", "method.name": "beft"}),
    "fig12_rank": ("rank", 2, {"model.name": "opt_1_3b", "method.name": "bitfit", "regime.name": "low"}),
}


def _compose_all(entry: str, experiment: str, combos: list[tuple[str, ...]]) -> list:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return [compose(entry, overrides=[f"experiment={experiment}", *combo]) for combo in combos]


@functools.cache
def expand(entry: str, experiment: str) -> tuple:
    """The jobs Hydra's basic sweeper would launch, each composed.

    Jobs that differ only in ``seed`` compose alike (the seed is a plain value, not a config group), so each other
    combination is composed once and copied with its seed set: a 198-job sweep costs 66 compositions. Compositions
    (about half a second each) are spread over the CPUs.
    """
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(entry, overrides=[f"experiment={experiment}"], return_hydra_config=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    batches = BasicSweeper.split_arguments(OverridesParser.create().parse_overrides(params), None)
    jobs = [job for batch in batches for job in batch]
    combos = list(dict.fromkeys(tuple(o for o in job if not o.startswith("seed=")) for job in jobs))
    workers = min(os.cpu_count() or 1, len(combos) // 8)
    if workers > 1:
        chunks = [combos[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            parts = list(pool.map(functools.partial(_compose_all, entry, experiment), chunks))
        composed = {
            combo: cfg
            for chunk, part in zip(chunks, parts, strict=True)
            for combo, cfg in zip(chunk, part, strict=True)
        }
    else:
        composed = dict(zip(combos, _compose_all(entry, experiment, combos), strict=True))
    out = []
    for job in jobs:
        cfg = copy.deepcopy(composed[tuple(o for o in job if not o.startswith("seed="))])
        for override in job:
            if override.startswith("seed="):
                cfg.seed = int(override.split("=", 1)[1])
        out.append(cfg)
    return tuple(out)


def test_every_experiment_file_is_tested():
    assert sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")) == sorted(EXPERIMENTS)


@pytest.mark.slow  # composes every job of every experiment file: tens of seconds in all
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
        # the model kind runs the task, the regime and the method (beft.config's checks that need no model files)
        config.validate_pairing(RunSpec.unchecked(job))


@pytest.mark.slow  # composes every job of every experiment file
def test_experiments_cover_every_run_of_the_paper_tables():
    """Every run a row of paper Tables 1-16 needs (make tables) is a job of some experiment file."""
    train = [name for name, (entry, _, _) in EXPERIMENTS.items() if entry == "train"]
    swept = {job.run_name for name in train for job in expand("train", name)}
    needed = set()
    for path in sorted((REPO / "results" / "paper").glob("table*.csv")):
        if path.stem[:7] in tables.PAPER_TABLES:
            paper = tables.read_paper(path)
            paper["value"] = pd.to_numeric(paper["value"], errors="coerce")
            table = tables.build_table(paper, pd.DataFrame(), tables.MODELS, {})
            needed |= {run for runs in table["runs"] for run in runs}
    assert len(needed) > 500
    assert sorted(needed - swept) == []


def test_decoder_baselines_and_table15_methods():
    table5 = expand("train", "table5_baselines")
    assert {j.method.label for j in table5} == {"lora", "prefix", "icl", "zero_shot"}
    assert {j.model.name for j in table5} == {"opt_1_3b", "opt_6_7b"}
    table15 = expand("train", "table15")
    assert {j.method.label for j in table15} == {"beft-v", "lora", "vera", "dora"}
    assert {j.task.name for j in table15} == {"sst2", "record", "squad"}
    assert {(j.model.name, j.bias.name) for j in expand("train", "table7")} == {("opt_1_3b", "v"), ("opt_1_3b", "o")}
    reshapes = {tuple(j.model.bias_reshape.values()) for j in expand("train", "table14")}
    assert reshapes == {(24, 32, 8), (32, 24, 8), (32, 32, 8)}  # the paper's (m, n, r) are the models' defaults


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
    started = sorted((tmp_path / "runs" / ".submitit").iterdir())
    second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert [p.read_text() for p in sorted((tmp_path / "runs").rglob("record.json"))] == before
    assert "skipping 2 finished jobs of 2" in second.stdout + second.stderr  # the launcher starts no job for them
    assert sorted((tmp_path / "runs" / ".submitit").iterdir()) == started


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
