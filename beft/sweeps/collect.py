"""Wait for a sweep's submitit jobs (local processes or one SLURM job array) and report each as a JobReturn.

A SLURM job that ends without a result (``scancel``, a node failure, out of time) is found with ``squeue`` as well
as ``sacct``, because a cluster without accounting (``sacct`` fails) would otherwise make submitit wait for it
forever. Such a job is reported as failed after the others have finished, and the sweep exits non-zero; rerunning
the sweep launches only it.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from hydra.core.utils import JobReturn, JobStatus, filter_overrides

from beft.sweeps import faults

log = logging.getLogger(__name__)

# squeue states after which a job never runs again (PREEMPTED is not one: a preempted job may be requeued)
SLURM_ENDED = {"BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY", "TIMEOUT"}
RESULT_GRACE_S = {"COMPLETED": 60.0}  # how long an ended job's result file may lag behind (shared file systems)
OTHER_GRACE_S = 5.0


def collect(
    jobs: list[Any], job_overrides: Sequence[Sequence[str]], slurm: bool, poll_s: float = 1.0
) -> list[JobReturn]:
    """Wait for every job, then one JobReturn each; a job that ended without a result gets a FAILED return."""
    ended = _wait(jobs, slurm, poll_s)
    returns, failures = [], []
    for i, job in enumerate(jobs):
        if i in ended and not job.paths.result_pickle.exists():
            error: Exception = RuntimeError(
                f"SLURM job {job.job_id} ended {ended[i]} without a result (cancelled, killed or out of time); "
                f"its log: {job.paths.stderr}"
            )
        else:
            try:
                ret = job.results()[0]
            except Exception as err:  # the job raised outside beft's guard, or never produced a result
                error = err
            else:
                if not isinstance(ret._return_value, faults.FailedJob):
                    returns.append(ret)
                    continue
                error = faults.JobsFailed(ret._return_value.reason)  # beft's guard logged it in the job and went on
        first_line = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        failures.append(f"{' '.join(filter_overrides(job_overrides[i]))}: {first_line}")
        returns.append(JobReturn(overrides=list(job_overrides[i]), status=JobStatus.FAILED, _return_value=error))
    if failures:
        log.error(
            "%d of %d jobs failed or did not finish; rerunning the sweep launches only them:\n  %s",
            len(failures),
            len(jobs),
            "\n  ".join(failures),
        )
    return returns


def _wait(jobs: list[Any], slurm: bool, poll_s: float) -> dict[int, str]:
    """Until every job has a result or has ended; returns index -> SLURM state of the jobs SLURM reports gone."""
    ended: dict[int, str] = {}
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
    return ended


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
