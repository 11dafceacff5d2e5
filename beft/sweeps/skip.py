"""Sweep launchers that launch nothing for finished runs.

A sweep composes each job's config once, in the launching process. A job whose run folder (the resolved
``hydra.sweep.dir``/``hydra.sweep.subdir``, which already holds the variant suffix) has a ``completed`` record is not
launched at all: no SLURM job, no process, no rewritten ``.hydra/`` folder. Hydra gets a ``COMPLETED`` return for it.
``force=true`` launches every job again. Failed, interrupted and missing runs are launched as usual.

The launcher classes Hydra instantiates live in hydra_plugins/beft_launchers/launchers.py (Hydra only loads launchers
from the ``hydra_plugins`` package); they mix in the classes below:

* ``SkipFinishedLocal``: Hydra's basic launcher (jobs one after another in this process), running the configs
  composed by the filter;
* ``SkipFinishedSubmitit``: hydra-submitit-launcher's launch (local processes or one SLURM job array), which keeps
  each job's number and waits for every job before it reports (beft/sweeps/collect.py).

A single run (no ``-m``) of a finished job is skipped by the entry point itself; the Hydra callback
``KeepFinishedRunFiles`` (beft/sweeps/callbacks.py) keeps Hydra from rewriting that run's ``.hydra/`` folder first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict, read_write

from beft import records
from beft.sweeps import faults, hydra_internals, variants
from beft.sweeps.collect import collect

log = logging.getLogger(__name__)


def entry_of(cfg: DictConfig) -> records.Entry:
    """The entry point a job's config belongs to: beft.rank's has a ``rank`` block (and writes ranking.json)."""
    return "rank" if "rank" in cfg else "train"


def job_folder(sweep_config: DictConfig) -> Path:
    """The job's output folder, resolved as the job itself resolves it: ``hydra.run.dir`` for a single run,
    ``hydra.sweep.dir``/``hydra.sweep.subdir`` for a sweep's job."""
    with hydra_internals.hydra_config_of(sweep_config):  # the folder holds ${hydra:job.override_dirname}
        if sweep_config.hydra.mode == RunMode.RUN:
            return Path(str(sweep_config.hydra.run.dir))
        return Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)


def finished_record(sweep_config: DictConfig) -> records.Record | None:
    """The job's completed record, or None when the job must run (no record, failed, forced, or not resolvable)."""
    try:
        if sweep_config.get("force", False):
            return None
        folder = job_folder(sweep_config)
        entry = entry_of(sweep_config)
    except Exception as err:  # the job itself will report it
        log.debug("cannot resolve the run folder of %s: %s", list(sweep_config.hydra.overrides.task), err)
        return None
    return records.completed_record(folder, entry)


def skipped_return(sweep_config: DictConfig, record: records.Record) -> JobReturn:
    """What Hydra gets for a finished job: COMPLETED, with the record's final score as the job's return value."""
    return hydra_internals.job_return(sweep_config, JobStatus.COMPLETED, record.final_score)


@dataclass
class Job:
    """One job of a sweep: its number, its overrides, and its config as composed by the filter (None with the
    composition error when it did not compose: the launcher reports that error when the job's turn comes)."""

    number: int
    overrides: list[str]
    config: DictConfig | None
    error: Exception | None = None


class SkipFinished:
    """Launch only the jobs without a completed record. Mixed into a Hydra launcher that has ``self.config``,
    ``self.hydra_context`` and a ``launch_pending(jobs)`` returning one JobReturn per job."""

    config: DictConfig | None
    hydra_context: Any

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        variants.register_resolver()  # the sweep subdir uses it (the entry points register it too)
        returns: dict[int, JobReturn] = {}
        pending: dict[int, Job] = {}
        for i, overrides in enumerate(job_overrides):
            job = self._compose(initial_job_idx + i, overrides)
            record = None if job.config is None else finished_record(job.config)
            if record is not None:
                returns[i] = skipped_return(job.config, record)
            else:
                pending[i] = job
        if returns:
            log.info(
                "skipping %d finished jobs of %d (completed records; force=true reruns them); launching %d",
                len(returns),
                len(job_overrides),
                len(pending),
            )
        if pending:
            returns.update(zip(pending, self.launch_pending(list(pending.values())), strict=True))
        return [returns[i] for i in range(len(job_overrides))]

    def _compose(self, number: int, overrides: Sequence[str]) -> Job:
        try:
            config = hydra_internals.compose_job(self.hydra_context, self.config, overrides)
        except Exception as err:  # composition errors are the job's to report
            log.debug("cannot compose %s: %s", list(overrides), err)
            return Job(number, list(overrides), None, err)
        return Job(number, list(overrides), config)

    def launch_pending(self, jobs: list[Job]) -> list[JobReturn]:
        raise NotImplementedError


class SkipFinishedLocal(SkipFinished):
    """Hydra's basic launcher for the pending jobs: one after another in this process, each with the config the
    filter composed. Mixed into a launcher with ``self.task_function`` (Hydra's BasicLauncher)."""

    task_function: Any

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        hydra_internals.start_local_launch(self.config)
        return super().launch(job_overrides, initial_job_idx)

    def launch_pending(self, jobs: list[Job]) -> list[JobReturn]:
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(jobs)} jobs locally")
        runs, failed_before, failed_runs = [], len(faults.FAILED_JOBS), []
        for job in jobs:
            log.info(f"\t#{job.number} : {' '.join(filter_overrides(job.overrides))}")
            if job.config is None:  # as Hydra's launcher, which composes the job here, the sweep stops
                assert job.error is not None
                raise job.error
            if records.lock_holder(job_folder(job.config)) is not None:  # it will skip: keep the running job's .hydra/
                with read_write(job.config.hydra), open_dict(job.config.hydra):
                    job.config.hydra.output_subdir = None
            known = len(faults.FAILED_JOBS)
            runs.append(
                hydra_internals.run_local_job(
                    self.hydra_context, self.task_function, self.config, job.config, job.number
                )
            )
            if len(faults.FAILED_JOBS) > known:  # the guard logged its failure and went on
                failed_runs.append(runs[-1])
        if failed := faults.FAILED_JOBS[failed_before:]:
            summary = f"{len(failed)} of {len(jobs)} jobs failed; rerunning the sweep redoes only them"
            log.error("%s:\n  %s", summary, "\n  ".join(failed))
            failed_runs[-1].status = JobStatus.FAILED  # Hydra's sweeper raises a failed job's error: exit code 1
            failed_runs[-1].return_value = faults.JobsFailed(f"{summary}: {'; '.join(failed)}")
        return runs


class SkipFinishedSubmitit(SkipFinished):
    """hydra-submitit-launcher's ``launch`` for the pending jobs (same executor set-up and job arguments; each job
    composes its config again in its own process), keeping each job's number, and waiting for every job before
    reporting (beft/sweeps/collect.py)."""

    params: dict[str, Any]
    _EXECUTOR: str

    def launch_pending(self, jobs: list[Job]) -> list[JobReturn]:
        assert self.config is not None
        executor = hydra_internals.submitit_executor(self._EXECUTOR, self.params)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info("submitit '%s': %d jobs, output under %s", self._EXECUTOR, len(jobs), sweep_dir)
        for job in jobs:
            log.info("\t#%d : %s", job.number, " ".join(filter_overrides(job.overrides)))
        overrides = [job.overrides for job in jobs]
        args = hydra_internals.submitit_job_args(overrides, [job.number for job in jobs])
        submitted = executor.map_array(self, *zip(*args, strict=True))
        return collect(submitted, overrides, slurm=self._EXECUTOR == "slurm")
