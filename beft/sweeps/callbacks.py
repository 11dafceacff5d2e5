"""Hydra callbacks, registered in conf/base.yaml (``hydra.callbacks``)."""

from __future__ import annotations

from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from beft import records
from beft.sweeps.skip import finished_record, job_folder


class KeepFinishedRunFiles(Callback):
    """A single run (no ``-m``) of a finished job, or of a job another live process is running, is skipped by the
    entry point, but Hydra first saves the new invocation's ``.hydra/`` files (config, overrides) into the job's
    folder, over those of the run that wrote (or is writing) the record. For such a run this callback sets
    ``hydra.output_subdir`` to null, so the folder keeps its provenance."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if finished_record(config) is not None or _held(config):
            with read_write(config.hydra), open_dict(config.hydra):  # Hydra hands it read-only
                config.hydra.output_subdir = None


def _held(config: DictConfig) -> bool:
    """Another live job holds the run folder's lock (it will skip this one)."""
    try:
        folder = job_folder(config)
    except Exception:  # not resolvable here: the job reports it
        return False
    return records.lock_holder(folder) is not None
