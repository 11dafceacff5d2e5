"""Waiting for a sweep's submitit jobs (beft/sweeps/collect.py), with stand-ins for submitit's jobs and squeue; the
real thing on a SLURM cluster: tests/sweeps/test_slurm.py."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.core.utils import JobReturn, JobStatus

from beft.sweeps import collect, faults


class FakeJob:
    """A submitit job: a result file once it has one, ``done()``, ``results()``."""

    def __init__(self, folder: Path, job_id: str, result: object = None, done: bool = True):
        self.job_id, self.result, self._done = job_id, result, done
        self.paths = SimpleNamespace(result_pickle=folder / f"{job_id}_result.pkl", stderr=folder / f"{job_id}.err")
        if result is not None:
            self.paths.result_pickle.write_text("result")

    def done(self) -> bool:
        return self._done

    def results(self) -> list:
        if isinstance(self.result, Exception) or self.result is None:
            raise self.result or RuntimeError("no result")
        return [self.result]


class Clock:
    """time.monotonic and time.sleep without waiting."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_local_jobs_are_collected_in_order_and_a_failed_one_is_reported(tmp_path, caplog):
    ok = JobReturn(overrides=["bias=v"], status=JobStatus.COMPLETED, _return_value=0.5)
    jobs = [FakeJob(tmp_path, "1", ok), FakeJob(tmp_path, "2", ValueError("bad job\ndetails"))]
    with caplog.at_level(logging.ERROR):
        returns = collect.collect(jobs, [["bias=v"], ["bias=q"]], slurm=False, poll_s=0)
    assert returns[0] is ok and returns[1].status == JobStatus.FAILED
    assert isinstance(returns[1]._return_value, ValueError)
    assert "1 of 2 jobs failed or did not finish" in caplog.text and "bias=q: bad job" in caplog.text


def test_a_slurm_job_gone_without_a_result_is_reported_after_its_grace(tmp_path, monkeypatch, caplog):
    clock = Clock()
    monkeypatch.setattr(collect, "time", clock)
    monkeypatch.setattr(collect, "slurm_states", lambda ids: {"7_1": "CANCELLED"})
    ok = JobReturn(overrides=["bias=v"], status=JobStatus.COMPLETED, _return_value=0.5)
    jobs = [FakeJob(tmp_path, "7_0", ok), FakeJob(tmp_path, "7_1", None, done=False)]
    with caplog.at_level(logging.ERROR):
        returns = collect.collect(jobs, [["bias=v"], ["bias=k"]], slurm=True, poll_s=1.0)
    assert returns[0] is ok and returns[1].status == JobStatus.FAILED
    assert "SLURM job 7_1 ended CANCELLED without a result" in str(returns[1]._return_value)
    assert clock.now >= collect.OTHER_GRACE_S  # not before its result could still appear


def test_without_squeue_submitits_own_check_decides(tmp_path, monkeypatch):
    monkeypatch.setattr(collect, "time", Clock())
    monkeypatch.setattr(collect, "slurm_states", lambda ids: None)
    returns = collect.collect([FakeJob(tmp_path, "8_0", None, done=True)], [["bias=o"]], slurm=True, poll_s=1.0)
    assert returns[0].status == JobStatus.FAILED and "no result" in str(returns[0]._return_value)


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        (SimpleNamespace(returncode=0, stdout="12_0|RUNNING\n12_1|COMPLETED\n", stderr=""),
         {"12_0": "RUNNING", "12_1": "COMPLETED"}),
        (SimpleNamespace(returncode=1, stdout="", stderr="slurm_load_jobs error: Invalid job id specified"), {}),
        (SimpleNamespace(returncode=1, stdout="", stderr="slurmctld down"), None),
        (OSError("no squeue"), None),
    ],
)  # fmt: skip
def test_slurm_states_reads_squeue(monkeypatch, run, expected):
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        if isinstance(run, Exception):
            raise run
        return run

    monkeypatch.setattr(subprocess, "run", fake_run)
    assert collect.slurm_states(["12_0", "12_1"]) == expected
    assert calls[0][-2:] == ["--jobs", "12"]  # one query for the array, every element listed (--array)


def test_a_job_the_guard_logged_as_failed_fails_the_sweep(tmp_path, caplog):
    """A submitit/SLURM job whose run failed inside beft's guard returns normally; the sweep still reports it."""
    ok = JobReturn(overrides=["bias=v"], status=JobStatus.COMPLETED, _return_value=0.5)
    failed = JobReturn(overrides=["bias=q"], status=JobStatus.COMPLETED, _return_value=faults.FailedJob("bad row 3"))
    jobs = [FakeJob(tmp_path, "1", ok), FakeJob(tmp_path, "2", failed)]
    with caplog.at_level(logging.ERROR):
        returns = collect.collect(jobs, [["bias=v"], ["bias=q"]], slurm=False, poll_s=0)
    assert returns[0] is ok and returns[1].status == JobStatus.FAILED
    assert isinstance(returns[1]._return_value, faults.JobsFailed)
    assert "1 of 2 jobs failed or did not finish" in caplog.text and "bias=q: bad row 3" in caplog.text
