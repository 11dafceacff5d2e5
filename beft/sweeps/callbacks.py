"""Hydra callbacks, registered in conf/base.yaml (``hydra.callbacks``)."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from beft.sweeps.skip import finished_record


class KeepFinishedRunFiles(Callback):
    """A single run (no ``-m``) of a finished job is skipped by the entry point, but Hydra first saves the new
    invocation's ``.hydra/`` files (config, overrides) into the job's folder, over those of the run that wrote the
    record. For such a run this callback sets ``hydra.output_subdir`` to null, so the folder keeps its provenance."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if finished_record(config) is not None:
            with read_write(config.hydra), open_dict(config.hydra):  # Hydra hands it read-only
                config.hydra.output_subdir = None
