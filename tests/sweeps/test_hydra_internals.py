"""What beft.sweeps relies on in Hydra's private API (beft/sweeps/hydra_internals.py): a Hydra or
hydra-submitit-launcher upgrade that changes any of it fails here first."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import submitit
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobStatus
from hydra.plugins.launcher import Launcher
from hydra.types import RunMode
from omegaconf import OmegaConf
from omegaconf.errors import ReadonlyConfigError

from beft.sweeps import hydra_internals
from tests.sweeps.conftest import sweep_config


def test_a_composed_job_has_its_own_override_dirname_and_variant_subdir(hydra_app, tmp_path):
    master, context = hydra_app("task=cb")
    overrides = ["task=cb", "bias=q", "data.num_train=16", "seed=1", f"results_dir={tmp_path}"]  # as the sweeper
    job = hydra_internals.compose_job(context, master, overrides)
    assert job.hydra.mode == RunMode.MULTIRUN  # the master's hydra overrides (hydra.mode) carry over
    assert list(job.hydra.overrides.task) == overrides
    assert job.hydra.job.override_dirname == "data.num_train=16"  # exclude_keys (conf/base.yaml) left out
    with hydra_internals.hydra_config_of(job):
        assert job.hydra.sweep.subdir == "minilm/cb/low/beft-q/seed=1__data.num_train=16"
        assert Path(job.hydra.sweep.dir) == tmp_path


def test_hydra_config_of_resolves_hydra_interpolations_and_restores_the_previous_config(tmp_path):
    cfg = sweep_config(tmp_path, "task=cb", "trainer.args.learning_rate=0.1")
    before = HydraConfig.instance().cfg
    with hydra_internals.hydra_config_of(cfg) as hydra_cfg:
        assert HydraConfig.get().job.override_dirname == "trainer.args.learning_rate=0.1"
        assert hydra_cfg.hydra is HydraConfig.get()
        assert cfg.hydra.run.dir.endswith("seed=0__trainer.args.learning_rate=0.1")
    assert HydraConfig.instance().cfg is before
    with pytest.raises(ReadonlyConfigError):  # set_config leaves the hydra node read-only (run_local_job opens it)
        cfg.hydra.job.num = 3


def test_run_local_job_runs_a_composed_job_as_hydras_basic_launcher(hydra_app, tmp_path):
    master, context = hydra_app("task=cb")
    job = hydra_internals.compose_job(context, master, ["task=cb", "bias=k", f"results_dir={tmp_path}"])
    with hydra_internals.hydra_config_of(job):  # as the skip filter holds it first
        pass
    seen = []
    ret = hydra_internals.run_local_job(context, lambda cfg: seen.append(cfg) or 0.75, master, job, number=4)
    folder = tmp_path / "minilm" / "cb" / "low" / "beft-k" / "seed=0"
    assert ret.status == JobStatus.COMPLETED and ret.return_value == 0.75 and len(seen) == 1
    assert "hydra" not in seen[0] and seen[0].bias.name == "k"
    assert sorted(p.name for p in (folder / ".hydra").iterdir()) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    saved = OmegaConf.load(folder / ".hydra" / "hydra.yaml").hydra
    assert (saved.job.num, saved.job.id, saved.runtime.output_dir) == (4, "4", str(folder))
    assert OmegaConf.load(folder / ".hydra" / "overrides.yaml") == list(job.hydra.overrides.task)
    assert ret.hydra_cfg.hydra.job.num == 4 and ret.overrides == list(job.hydra.overrides.task)


def test_job_return_is_shaped_like_run_jobs(tmp_path):
    cfg = sweep_config(tmp_path, "task=cb")
    ret = hydra_internals.job_return(cfg, JobStatus.COMPLETED, 0.5)
    assert ret.status == JobStatus.COMPLETED and ret.return_value == 0.5
    assert "hydra" not in ret.cfg and ret.cfg.task.name == "cb"
    assert ret.hydra_cfg.hydra.job.override_dirname == "" and list(ret.overrides) == ["results_dir=" + str(tmp_path),
                                                                                         "task=cb"]  # fmt: skip
    assert ret.task_name == cfg.hydra.job.name


def test_hydras_basic_launcher_is_a_launcher_set_up_with_config_context_and_task():
    launcher = hydra_internals.HydraBasicLauncher()
    assert isinstance(launcher, Launcher)
    launcher.setup(hydra_context="context", task_function="task", config="config")
    assert (launcher.hydra_context, launcher.task_function, launcher.config) == ("context", "task", "config")


def test_submitit_job_args_match_the_submitit_launchers_call():
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher

    params = list(inspect.signature(BaseSubmititLauncher.__call__).parameters)
    assert params == ["self", "sweep_overrides", "job_dir_key", "job_num", "job_id", "singleton_state"]
    args = hydra_internals.submitit_job_args([["bias=q"], ["bias=k"]], [3, 5])
    assert [a[:4] for a in args] == [(["bias=q"], "hydra.sweep.dir", 3, "job_id_for_3"),
                                     (["bias=k"], "hydra.sweep.dir", 5, "job_id_for_5")]  # fmt: skip
    state = args[0][4]
    assert ConfigStore in state["instances"] and "beft_variant" in state["omegaconf_resolvers"]


def test_submitit_executor_takes_the_launchers_params(tmp_path, monkeypatch):
    params = {**OmegaConf.to_container(sweep_config(tmp_path, "hydra/launcher=submitit_local").hydra.launcher)}
    del params["_target_"]
    params["submitit_folder"] = str(tmp_path / ".submitit" / "%j")
    executor = hydra_internals.submitit_executor("local", params)
    assert executor.cluster == "local" and executor.folder == tmp_path / ".submitit" / "%j"
    assert executor._executor.parameters["timeout_min"] == 240

    made = {}

    class Recorder:  # a SLURM executor needs srun: record what it would be given
        def __init__(self, cluster, **init):
            made.update(cluster=cluster, init=init)

        def update_parameters(self, **kwargs):
            made["params"] = kwargs

    monkeypatch.setattr(submitit, "AutoExecutor", Recorder)
    hydra_internals.submitit_executor("slurm", {"submitit_folder": "f", "max_num_timeout": 3, "timeout_min": 9,
                                                "partition": "p", "setup": ["x"]})  # fmt: skip
    assert made == {"cluster": "slurm", "init": {"folder": "f", "slurm_max_num_timeout": 3},
                    "params": {"timeout_min": 9, "slurm_partition": "p", "slurm_setup": ["x"]}}  # fmt: skip
