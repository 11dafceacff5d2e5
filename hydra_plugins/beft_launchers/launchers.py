"""Hydra launchers that launch nothing for finished runs (the logic is in beft/launchers.py).

Hydra instantiates launchers only from the ``hydra_plugins`` package, so the classes are declared here. Their configs
are stored as ``hydra/launcher/beft_basic`` and ``beft_submitit_slurm``, which conf/hydra/launcher/{local,slurm}.yaml
extend.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hydra._internal.core_plugins.basic_launcher import BasicLauncher as HydraBasicLauncher
from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, configure_log, filter_overrides, run_job, setup_globals
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from omegaconf import open_dict

from beft.launchers import SkipFinished, SkipFinishedSubmitit

log = logging.getLogger(__name__)


class BasicLauncher(SkipFinished, HydraBasicLauncher):
    """Hydra's basic launcher (jobs one after another in this process), minus the finished jobs."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        setup_globals()
        assert self.config is not None
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return super().launch(job_overrides, initial_job_idx)

    def launch_pending(self, job_overrides: Sequence[Sequence[str]], job_numbers: Sequence[int]) -> list[JobReturn]:
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally")
        runs = []
        for number, overrides in zip(job_numbers, job_overrides, strict=True):
            log.info(f"\t#{number} : {' '.join(filter_overrides(overrides))}")
            sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            with open_dict(sweep_config):
                sweep_config.hydra.job.id = number
                sweep_config.hydra.job.num = number
            runs.append(
                run_job(
                    hydra_context=self.hydra_context,
                    task_function=self.task_function,
                    config=sweep_config,
                    job_dir_key="hydra.sweep.dir",
                    job_subdir_key="hydra.sweep.subdir",
                )
            )
            configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        return runs


class SubmititLocalLauncher(SkipFinishedSubmitit, submitit_launcher.LocalLauncher):
    """hydra-submitit-launcher's local launcher (one process per job), minus the finished jobs."""


class SlurmLauncher(SkipFinishedSubmitit, submitit_launcher.SlurmLauncher):
    """hydra-submitit-launcher's SLURM launcher (one job array), minus the finished jobs."""


@dataclass
class BasicConf:
    _target_: str = f"{__name__}.BasicLauncher"


@dataclass
class SlurmConf(SlurmQueueConf):
    _target_: str = f"{__name__}.SlurmLauncher"


# conf/hydra/launcher/submitit_local.yaml cannot extend a stored config: hydra-submitit-launcher stores one under the
# same name, and Hydra then validates the file against that (automatic schema matching; beft/launchers.py).
_CONFIGS = {"beft_basic": BasicConf, "beft_submitit_slurm": SlurmConf}
for _name, _node in _CONFIGS.items():
    ConfigStore.instance().store(group="hydra/launcher", name=_name, node=_node, provider="beft")
