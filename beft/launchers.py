"""Sweep launchers that submit nothing for finished runs, and wait for SLURM jobs without ``sacct``.

A rerun of a sweep composes each job's config in the launching process first. A job whose run folder (the resolved
``hydra.sweep.dir``/``hydra.sweep.subdir``, which already holds the variant suffix) has a ``completed`` record is not
launched at all: no SLURM job, no process, no rewritten ``.hydra/`` folder. Hydra gets a ``COMPLETED`` return for it.
``force=true`` launches every job again. Failed, interrupted and missing runs are launched as usual.

The launcher classes Hydra instantiates live in ``hydra_plugins/beft_launchers`` (Hydra only loads launchers from the
``hydra_plugins`` package); they mix in the classes below:

* ``SkipFinished``: the filter above, for any launcher that implements ``launch_pending``;
* ``SkipFinishedSubmitit``: hydra-submitit-launcher's launch loop (local processes or one SLURM job array), which
  keeps each job's number and waits for every job before it reports. A SLURM job that ends without a result
  (``scancel``, a node failure, out of time) is found with ``squeue`` as well as ``sacct``, because a cluster without
  accounting (``sacct`` fails) would otherwise make submitit wait for it forever. Such a job is reported as failed
  after the others have finished, and the sweep exits non-zero; rerunning the sweep launches only it.

A single run (no ``-m``) of a finished job is skipped by the entry point itself; the Hydra callback
``KeepFinishedRunFiles`` (conf/base.yaml) keeps Hydra from rewriting that run's ``.hydra/`` folder first.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import subprocess
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from beft import records, variants

log = logging.getLogger(__name__)

# squeue states after which a job never runs again (PREEMPTED is not one: a preempted job may be requeued)
SLURM_ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT"}
RESULT_GRACE_S = {"COMPLETED": 60.0}  # how long an ended job's result file may lag behind (shared file systems)
OTHER_GRACE_S = 5.0


def quiet_schema_matching() -> None:
    """Silence Hydra's deprecation warning for conf/hydra/launcher/submitit_local.yaml, which has the name of the
    plugin's stored config: Hydra validates the file against it ("automatic schema matching"). The file lists every
    key, so it composes the same when Hydra drops that behaviour. Called by the entry points (beft.train, beft.rank)."""
    pattern = r"\s*'hydra/launcher/submitit_local' is validated against ConfigStore schema"
    warnings.filterwarnings("ignore", message=pattern, category=UserWarning)


@contextlib.contextmanager
def _hydra_config_of(sweep_config: DictConfig) -> Iterator[DictConfig]:
    """Hydra's config (``HydraConfig``) set to the job's while inside, as in the job: ``${hydra:...}`` resolves."""
    hydra_config = HydraConfig.instance()
    previous = hydra_config.cfg
    hydra_config.set_config(sweep_config)
    try:
        yield hydra_config.cfg
    finally:
        hydra_config.cfg = previous


def job_folder(sweep_config: DictConfig) -> Path:
    """The job's output folder, resolved as the job itself resolves it: ``hydra.run.dir`` for a single run,
    ``hydra.sweep.dir``/``hydra.sweep.subdir`` for a sweep's job."""
    with _hydra_config_of(sweep_config):  # the folder holds ${hydra:job.override_dirname}
        if sweep_config.hydra.mode == RunMode.RUN:
            return Path(str(sweep_config.hydra.run.dir))
        return Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)


def record_file(cfg: DictConfig) -> str:
    """The record a job of this entry point writes: beft.rank writes ranking.json, beft.train record.json."""
    return records.RANKING_FILE if "rank" in cfg else records.RECORD_FILE


def finished_record(sweep_config: DictConfig) -> dict[str, Any] | None:
    """The job's completed record, or None when the job must run (no record, failed, forced, or not resolvable)."""
    try:
        if sweep_config.get("force", False):
            return None
        folder = job_folder(sweep_config)
        name = record_file(sweep_config)
    except Exception as err:  # the job itself will report it
        log.debug("cannot resolve the run folder of %s: %s", list(sweep_config.hydra.overrides.task), err)
        return None
    return records.read_record(folder, name) if records.is_completed(folder, name) else None


def skipped_return(sweep_config: DictConfig, record: dict[str, Any]) -> JobReturn:
    """What Hydra gets for a finished job: COMPLETED, with the record's final score as the job's return value."""
    task_cfg = copy.deepcopy(sweep_config)
    with open_dict(task_cfg):
        del task_cfg["hydra"]
    with _hydra_config_of(sweep_config) as hydra_cfg:
        hydra_cfg = copy.deepcopy(hydra_cfg)  # as hydra.core.utils.run_job keeps it
    score = record.get("score")
    return JobReturn(
        overrides=list(sweep_config.hydra.overrides.task),
        cfg=task_cfg,
        hydra_cfg=hydra_cfg,
        working_dir=os.getcwd(),
        task_name=str(sweep_config.hydra.job.name),
        status=JobStatus.COMPLETED,
        _return_value=score.get("final") if isinstance(score, dict) else None,
    )


class KeepFinishedRunFiles(Callback):
    """A single run (no ``-m``) of a finished job is skipped by the entry point, but Hydra first saves the new
    invocation's ``.hydra/`` files (config, overrides) into the job's folder, over those of the run that wrote the
    record. For such a run this callback sets ``hydra.output_subdir`` to null, so the folder keeps its provenance.
    Registered in conf/base.yaml (``hydra.callbacks``)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if finished_record(config) is not None:
            with read_write(config.hydra), open_dict(config.hydra):  # Hydra hands it read-only
                config.hydra.output_subdir = None


class SkipFinished:
    """Launch only the jobs without a completed record. Mixed into a Hydra launcher that has ``self.config``,
    ``self.hydra_context`` and a ``launch_pending(job_overrides, job_numbers)`` returning one JobReturn per job."""

    config: DictConfig | None
    hydra_context: Any

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None
        variants.register_resolver()  # the sweep subdir uses it (the entry points register it too)
        returns: dict[int, JobReturn] = {}
        for i, overrides in enumerate(job_overrides):
            try:
                sweep_config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
            except Exception as err:  # composition errors are the job's to report
                log.debug("cannot compose %s: %s", list(overrides), err)
                continue
            record = finished_record(sweep_config)
            if record is not None:
                returns[i] = skipped_return(sweep_config, record)
        pending = [i for i in range(len(job_overrides)) if i not in returns]
        if returns:
            log.info(
                "skipping %d finished jobs of %d (completed records; force=true reruns them); launching %d",
                len(returns),
                len(job_overrides),
                len(pending),
            )
        if pending:
            launched = self.launch_pending([job_overrides[i] for i in pending], [initial_job_idx + i for i in pending])
            returns.update(zip(pending, launched, strict=True))
        return [returns[i] for i in range(len(job_overrides))]

    def launch_pending(self, job_overrides: Sequence[Sequence[str]], job_numbers: Sequence[int]) -> list[JobReturn]:
        raise NotImplementedError


class SkipFinishedSubmitit(SkipFinished):
    """hydra-submitit-launcher's ``launch`` for the pending jobs (same executor set-up and job arguments), keeping
    each job's number, and waiting for every job before reporting (see the module docstring)."""

    params: dict[str, Any]
    _EXECUTOR: str

    def launch_pending(self, job_overrides: Sequence[Sequence[str]], job_numbers: Sequence[int]) -> list[JobReturn]:
        import submitit  # lazy, as the plugin does: Hydra scans this module for every app
        from hydra.core.singleton import Singleton
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        assert self.config is not None
        init = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:  # an executor argument (slurm_max_num_timeout), not a job parameter
            init[f"{self._EXECUTOR}_max_num_timeout"] = self.params["max_num_timeout"]
        executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init)
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                k if k in base else f"{self._EXECUTOR}_{k}": v
                for k, v in self.params.items()
                if k not in ("submitit_folder", "max_num_timeout")
            }
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:
            os.chmod(sweep_dir, mode=int(str(self.config.hydra.sweep.mode), 8))
        log.info("submitit '%s': %d jobs, output under %s", self._EXECUTOR, len(job_overrides), sweep_dir)
        for number, overrides in zip(job_numbers, job_overrides, strict=True):
            log.info("\t#%d : %s", number, " ".join(filter_overrides(overrides)))
        state = Singleton.get_state()
        args = [
            (list(o), "hydra.sweep.dir", n, f"job_id_for_{n}", state)
            for n, o in zip(job_numbers, job_overrides, strict=True)
        ]
        jobs = executor.map_array(self, *zip(*args, strict=True))
        return collect(jobs, job_overrides, slurm=self._EXECUTOR == "slurm")


def collect(
    jobs: list[Any], job_overrides: Sequence[Sequence[str]], slurm: bool, poll_s: float = 1.0
) -> list[JobReturn]:
    """Wait for every job, then one JobReturn each; a job that ended without a result gets a FAILED return."""
    ended: dict[int, str] = {}  # index -> how it ended, for jobs SLURM reports gone without a result
    waiting = set(range(len(jobs)))
    start = last_query = time.monotonic()
    seen_end: dict[int, float] = {}
    while waiting:
        waiting = {i for i in waiting if not jobs[i].paths.result_pickle.exists()}
        if not slurm:
            waiting = {i for i in waiting if not jobs[i].done()}
        elif waiting and time.monotonic() - last_query >= min(30.0, max(2.0, (time.monotonic() - start) / 10)):
            last_query = time.monotonic()
            states = slurm_states([jobs[i].job_id for i in waiting])
            now = time.monotonic()
            for i in list(waiting):
                job_state = "UNKNOWN" if states is None else states.get(jobs[i].job_id, "GONE")
                if states is None and jobs[i].done():  # no squeue: submitit's own check (sacct)
                    waiting.discard(i)
                elif job_state in SLURM_ENDED or job_state == "GONE":
                    seen_end.setdefault(i, now)
                    if now - seen_end[i] >= RESULT_GRACE_S.get(job_state, OTHER_GRACE_S):
                        ended[i] = job_state
                        waiting.discard(i)
                else:
                    seen_end.pop(i, None)  # requeued: running again
        if waiting:
            time.sleep(poll_s)
    returns, failures = [], []
    for i, job in enumerate(jobs):
        if i in ended and not job.paths.result_pickle.exists():
            error: Exception = RuntimeError(
                f"SLURM job {job.job_id} ended {ended[i]} without a result (cancelled, killed or out of time); "
                f"its log: {job.paths.stderr}"
            )
        else:
            try:
                returns.append(job.results()[0])
                continue
            except Exception as err:  # the job raised outside beft's guard, or never produced a result
                error = err
        first_line = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        failures.append(f"{' '.join(filter_overrides(job_overrides[i]))}: {first_line}")
        returns.append(JobReturn(overrides=list(job_overrides[i]), status=JobStatus.FAILED, _return_value=error))
    if failures:
        log.error(
            "%d of %d jobs did not finish; rerunning the sweep launches only them:\n  %s",
            len(failures),
            len(jobs),
            "\n  ".join(failures),
        )
    return returns


def slurm_states(job_ids: Sequence[str]) -> dict[str, str] | None:
    """SLURM's state of each job (array elements one by one, finished jobs while slurmctld keeps them); None when
    squeue cannot be asked. A job missing from the answer has left SLURM's memory."""
    arrays = sorted({job_id.split("_")[0] for job_id in job_ids})
    cmd = ["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T", "--jobs", ",".join(arrays)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("squeue failed (%s); waiting on submitit's own checks", err)
        return None
    if out.returncode != 0:
        if "Invalid job id" in out.stderr:  # every listed job has left SLURM's memory
            return {}
        log.warning("squeue failed (%s); waiting on submitit's own checks", out.stderr.strip())
        return None
    states = {}
    for line in out.stdout.split():
        job_id, _, job_state = line.partition("|")
        states[job_id] = job_state.split()[0] if job_state else "UNKNOWN"
    return states
