"""Every use of Hydra's private API (and hydra-submitit-launcher's) in one place, pinned by
tests/sweeps/test_hydra_internals.py: an upgrade of either package that changes what is relied on here fails there.

Relied on (hydra-core 1.3, hydra-submitit-launcher 1.2):

* ``HydraConfig.set_config`` makes ``${hydra:...}`` resolve against a job's config outside ``run_job``; it marks the
  config's ``hydra`` node read-only;
* ``hydra_context.config_loader.load_sweep_config`` composes one job of a sweep as the job itself composes it
  (``hydra.job.override_dirname`` filled from the job's overrides);
* ``run_job`` runs a composed job as Hydra's ``BasicLauncher`` does (``.hydra/`` folder, output dir, callbacks);
* the submitit launcher's ``__call__(overrides, job_dir_key, job_num, job_id, singleton_state)`` and its executor
  parameters (``BaseQueueConf`` keys plain, the others prefixed with the executor's name).
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from hydra._internal.core_plugins.basic_launcher import BasicLauncher as HydraBasicLauncher
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, run_job, setup_globals
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

__all__ = [
    "HydraBasicLauncher",
    "compose_job",
    "hydra_config_of",
    "job_return",
    "quiet_schema_matching",
    "run_local_job",
    "start_local_launch",
    "submitit_executor",
    "submitit_job_args",
]


def quiet_schema_matching() -> None:
    """Silence Hydra's deprecation warning for conf/hydra/launcher/submitit_local.yaml, which has the name of the
    plugin's stored config: Hydra validates the file against it ("automatic schema matching"). The file lists every
    key, so it composes the same when Hydra drops that behaviour. Called by the entry points (``beft.sweeps.setup``)."""
    pattern = r"\s*'hydra/launcher/submitit_local' is validated against ConfigStore schema"
    warnings.filterwarnings("ignore", message=pattern, category=UserWarning)


@contextlib.contextmanager
def hydra_config_of(sweep_config: DictConfig) -> Iterator[DictConfig]:
    """Hydra's config (``HydraConfig``) set to the job's while inside, as in the job: ``${hydra:...}`` resolves."""
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(sweep_config)
    try:
        yield hydra_config.cfg
    finally:
        hydra_config.cfg = previous


def compose_job(hydra_context: HydraContext, master_config: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """One job's config, composed from the sweep's (``master_config``) and the job's overrides."""
    return hydra_context.config_loader.load_sweep_config(master_config, list(overrides))


def job_return(sweep_config: DictConfig, status: JobStatus, return_value: Any) -> JobReturn:
    """A JobReturn shaped like ``run_job``'s, for a job that is not run: the task config without ``hydra``, and a copy
    of Hydra's config as the job would have had it."""
    task_cfg = copy.deepcopy(sweep_config)
    with open_dict(task_cfg):
        del task_cfg["hydra"]
    with hydra_config_of(sweep_config) as hydra_cfg:
        hydra_cfg = copy.deepcopy(hydra_cfg)
    return JobReturn(
        overrides=list(sweep_config.hydra.overrides.task),
        cfg=task_cfg,
        hydra_cfg=hydra_cfg,
        working_dir=os.getcwd(),
        task_name=str(sweep_config.hydra.job.name),
        status=status,
        _return_value=return_value,
    )


def start_local_launch(master_config: DictConfig) -> None:
    """What Hydra's BasicLauncher does before its jobs: Hydra's resolvers, Hydra's own logging."""
    setup_globals()
    configure_log(master_config.hydra.hydra_logging, master_config.hydra.verbose)


def run_local_job(
    hydra_context: HydraContext,
    task_function: TaskFunction,
    master_config: DictConfig,
    sweep_config: DictConfig,
    number: int,
) -> JobReturn:
    """Run one composed job in this process, as Hydra's BasicLauncher runs each of its jobs."""
    with read_write(sweep_config.hydra), open_dict(sweep_config.hydra):  # read-only once HydraConfig held it
        sweep_config.hydra.job.id = number
        sweep_config.hydra.job.num = number
    ret = run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
    configure_log(master_config.hydra.hydra_logging, master_config.hydra.verbose)  # the job set its own logging
    return ret


def submitit_executor(executor_name: str, params: dict[str, Any]) -> Any:
    """A submitit executor set up as hydra-submitit-launcher's ``launch`` sets it up from the launcher's params."""
    import submitit  # lazy, as the plugin does: Hydra scans the launcher modules for every app
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    init = {"folder": params["submitit_folder"]}
    if "max_num_timeout" in params:  # an executor argument (slurm_max_num_timeout), not a job parameter
        init[f"{executor_name}_max_num_timeout"] = params["max_num_timeout"]
    executor = submitit.AutoExecutor(cluster=executor_name, **init)
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{
            k if k in base else f"{executor_name}_{k}": v
            for k, v in params.items()
            if k not in ("submitit_folder", "max_num_timeout")
        }
    )
    return executor


def submitit_job_args(
    job_overrides: Sequence[Sequence[str]], job_numbers: Sequence[int]
) -> list[tuple[list[str], str, int, str, Any]]:
    """The arguments of the submitit launcher's ``__call__`` for each job, with this process's Singleton state (the
    ConfigStore, the config search path) so the job composes its config as this process would."""
    state = Singleton.get_state()
    return [
        (list(o), "hydra.sweep.dir", n, f"job_id_for_{n}", state)
        for n, o in zip(job_numbers, job_overrides, strict=True)
    ]
