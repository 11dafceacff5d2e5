"""The launchers Hydra instantiates (Hydra loads launchers only from the ``hydra_plugins`` package), and their stored
configs ``hydra/launcher/beft_basic`` and ``beft_submitit_slurm``, which conf/hydra/launcher/{local,slurm}.yaml extend.
They launch nothing for finished runs; the logic is beft/sweeps/skip.py's.
"""

from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher import submitit_launcher
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

from beft.sweeps.hydra_internals import HydraBasicLauncher
from beft.sweeps.skip import SkipFinishedLocal, SkipFinishedSubmitit


class BasicLauncher(SkipFinishedLocal, HydraBasicLauncher):
    """Hydra's basic launcher (jobs one after another in this process), minus the finished jobs."""


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
# same name, and Hydra then validates the file against that (automatic schema matching; beft/sweeps/hydra_internals.py).
_CONFIGS = {"beft_basic": BasicConf, "beft_submitit_slurm": SlurmConf}
for _name, _node in _CONFIGS.items():
    ConfigStore.instance().store(group="hydra/launcher", name=_name, node=_node, provider="beft")
