"""Composing the entry configs as a sweep's launcher does, and running beft's launchers in this process."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import HydraContext
from omegaconf import DictConfig

from beft import sweeps
from tests.conftest import CONF_DIR


def sweep_config(tmp_path: Path, *overrides: str, entry: str = "train") -> DictConfig:
    """The entry config composed with Hydra's config (``hydra.*``), results under ``tmp_path``."""
    sweeps.setup()  # as the entry points do (pytest resets warning filters for every test)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(entry, overrides=[f"results_dir={tmp_path}", *overrides], return_hydra_config=True)


@pytest.fixture
def hydra_app(tmp_path: Path) -> Iterator[Callable[..., tuple[DictConfig, HydraContext]]]:
    """A sweep's master config (``hydra.mode=MULTIRUN``) and Hydra's context, as ``-m`` hands them to a launcher.
    The sweeper gives each job every task override of the command line: a job's overrides name results_dir too."""
    from hydra._internal.callbacks import Callbacks  # the test sets up what Hydra's own multirun sets up

    sweeps.setup()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()

        def make(*overrides: str, entry: str = "train") -> tuple[DictConfig, HydraContext]:
            master = compose(entry, [f"results_dir={tmp_path}", "hydra.mode=MULTIRUN", *overrides], True)
            return master, HydraContext(config_loader=loader, callbacks=Callbacks(master))

        yield make
